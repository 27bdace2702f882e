"""`dagrpo experiment`: every (scenario, method, seed) of a preset in one harness; resumable; report.

Algorithm:
  0. (optional) Fit the format warm-up adapter once (departure 4).
  1. Load the preset (configs/experiments/*.toml): [experiment] (methods, seeds, report kind),
     [base] (a training config: model, train, cloud, phases) and [[scenarios]] (each may replace the
     phases and add `--set`-style overrides). Every run's config is resolved and validated up front.
  2. Plan runs, one directory each under OUT/<scenario>/<method>/seed<k>:
     - collaborative methods (grpo_fixed, gvpo, gapg, da_grpo): `trainer.train.train` with
       train.method = the method; accuracies come from the trainer's own phase-end evaluations;
     - the edge family (edge_only, naive_router, router) shares ONE trained model per (scenario,
       seed) in OUT/<scenario>/edge/seed<k> (train.method = edge_only): training stops at each
       phase end (train(max_steps=...)), the three evaluation rules run on that model, training
       resumes (the trainer's exact resume);
     - cloud_only trains nothing: the cloud answers every test query.
  3. A run whose `result.json` exists is finished and skipped (resume after interruption); an
     unfinished training run resumes from its `state.json`.
  4. Aggregate whatever has finished into OUT/results.json, OUT/results.md (laid out like the
     paper's table for `kind = "table1"`) and PNG figures; the report says how many runs are done.

Evaluation (every method, at each phase end, on the test split of every task seen so far, eval_n
examples, greedy): `local` = accuracy over the queries answered locally without help, `joint` =
accuracy over all queries with the cloud answering the offloaded ones.
  edge_only     no cloud: help requests stay unanswered, so local = joint (paper table 1 shows the
                same row in both blocks);
  naive_router  routing.naive_offload at the task's tau; local over the kept queries;
  router        trainer/router.py classifier fitted on this model's features and greedy outcomes
                on `router_train_n` train queries of every task seen so far, threshold calibrated
                per task on `router_val_n` val queries to offload rate tau of the task;
  cloud_only    the cloud's answer on every query (local column = the same accuracy, like the
                paper's "Cloud LLM Cluster" row).
The task's tau is the budget of the phase that trains it (its last value for a schedule).
Forgetting rate (collab.metrics.forgetting_rate) = (during - post) / during on the scenario's
`forgetting_task`, during = end of the phase that trains it, post = end of the last phase.

Departures from the paper:
 1. Routers are fitted after the fact on train/val queries of every task seen so far (the
    router is a separate component, not the continual policy; the paper does not say which data
    its router used). The routed evaluations re-generate the greedy answers themselves.
 2. The paper tunes the baselines' assistance rewards by grid search per task and ratio; we use
    its table-3 values (configurable per preset with train.method_args).
 3. Mean +- std is over seeds (sample std, ddof=1); the paper reports single numbers.
 4. Optional format warm-up ([experiment.warmup], used by the SmolLM2 presets): supervised LoRA
    steps on reference answers in the paper's format (a random share replaced by a help request),
    fitted once per experiment into OUT/warmup/adapter; every run's LoRA starts from it
    (model.init_adapter), so the llama.cpp engine and the edge agent serve it on the stock GGUF.
    The paper's instruct models follow the format already; SmolLM2-135M does not, and without it
    every advantage is zero.
 5. The micro and smollm2 presets start DA-GRPO from lambda_init 1.0 (the paper: 0.5; micro_table1
    through `method_set`, the others in [base], which no baseline reads): with a few steps per
    phase lambda cannot travel to the reward gap of asking, and below it the small model falls
    into the all-ask state (docs/experiments.md, Fig. 4 analogue).
 6. `train.eval_tasks` may restrict the phase-end evaluations (and the routers' fits) to the
    tasks the report uses -- the Table-1 presets evaluate the scenario's forgetting task only.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from dagrpo.errors import UserError
from trainer.config import RunConfig, load_config
from trainer.methods import EDGE_FAMILY, METHODS
from trainer.warmup import WarmupConfig

log = logging.getLogger("dagrpo.experiment")
COLLABORATIVE = ("grpo_fixed", "gvpo", "gapg", "da_grpo")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_GENERATORS = {"math": "collab.tasks.math_gen", "science": "collab.tasks.science",
               "code": "collab.tasks.code_gen", "knowledge": "collab.tasks.knowledge"}


class TaskSpec(_Strict):
    """A built-in generator restricted to some difficulty levels, registered under a new name."""

    name: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_-]*$")
    base: Literal["math", "science", "code", "knowledge"]
    levels: list[int] = Field(min_length=1, description="difficulty levels 1..5 to draw from")

    def register(self) -> None:
        import importlib

        from collab.tasks import register_task

        module = importlib.import_module(_GENERATORS[self.base])
        register_task(module.make_task(name=self.name, levels=tuple(self.levels)), replace=True)


class ExperimentSpec(_Strict):
    name: str = Field(min_length=1, description="preset name (used for the default output directory)")
    kind: Literal["table1", "lambda_init", "tau_schedules", "tau_sweep"] = Field(
        description="which paper result the report reproduces (table 1, fig. 4, fig. 10, fig. 9)")
    methods: list[str] = Field(min_length=1, description="methods to run, from trainer.methods.METHODS")
    seeds: list[int] = Field(min_length=1, description="train.seed of each repetition")
    router_train_n: int = Field(16, ge=2, description="router: train queries per task for the classifier")
    router_val_n: int = Field(16, ge=1, description="router: val queries per task for the threshold")
    router_l2: float = Field(10.0, gt=0, description="router: L2 weight of the logistic regression")
    method_set: dict[str, list[str]] = Field(default_factory=dict,
                                             description="extra --set overrides per method")
    tasks: list[TaskSpec] = Field(default_factory=list, description="level-restricted tasks to register "
                                  "(in this process only) before the configs are resolved")
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)

    @field_validator("methods")
    @classmethod
    def _known(cls, v):
        bad = [m for m in v if m not in METHODS]
        if bad:
            raise ValueError(f"unknown methods {bad}; known: {list(METHODS)}")
        if len(set(v)) != len(v):
            raise ValueError("a method is listed twice")
        return v


class Scenario(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$")
    forgetting_task: str | None = Field(None, description="task whose forgetting is measured (default: "
                                        "the first task of the first phase)")
    set: list[str] = Field(default_factory=list, description="--set style overrides of the base config")
    phases: list[dict] | None = Field(None, description="replaces base.phases")


class Preset(_Strict):
    experiment: ExperimentSpec
    base: dict = Field(default_factory=dict)
    scenarios: list[Scenario] = Field(min_length=1)
    _warmup_dir: Path | None = PrivateAttr(None)  # OUT/warmup/adapter once run_all knows OUT


@dataclass
class Run:
    scenario: str
    group: str  # directory name: a method, or "edge" for the shared edge-family model
    methods: tuple[str, ...]  # methods whose results this run produces
    seed: int
    cfg: RunConfig
    dir: Path

    @property
    def done(self) -> bool:
        return (self.dir / "result.json").is_file()

    @property
    def label(self) -> str:
        return f"{self.scenario}/{self.group}/seed{self.seed}"


def load_preset(path: str | Path, overrides: list[str] = ()) -> Preset:
    """Read and validate a preset; `overrides` apply to [base] (e.g. train.eval_n=4)."""
    from trainer.config import apply_override, read_toml

    path = Path(path)
    data = read_toml(path, "experiment preset")
    try:
        preset = Preset.model_validate(data)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"{path}: invalid preset: {msgs}") from None
    for task in preset.experiment.tasks:
        task.register()
    for assignment in overrides:
        apply_override(preset.base, assignment)
    return preset


def warmup_dir(preset: Preset) -> Path | None:
    """Where the warm-up model lives (set by run_all), or None without a warm-up."""
    return preset._warmup_dir if preset.experiment.warmup.steps else None


def run_config(preset: Preset, scenario: Scenario, method: str, seed: int) -> RunConfig:
    data = copy.deepcopy(preset.base)
    wdir = warmup_dir(preset)
    if wdir is not None and (wdir / "adapter_config.json").is_file():
        data.setdefault("model", {})["init_adapter"] = str(wdir)
    if scenario.phases is not None:
        data["phases"] = copy.deepcopy(scenario.phases)
    train_method = "edge_only" if method in EDGE_FAMILY else method
    sets = [*scenario.set, *preset.experiment.method_set.get(method, []),
            f'train.method="{train_method}"', f"train.seed={seed}"]
    try:
        return load_config(None, sets, base=data)
    except UserError as exc:
        raise UserError(f"scenario {scenario.name!r}, method {method!r}: {exc}") from None


def plan(preset: Preset, out: Path, *, methods=None, seeds=None, scenarios=None) -> list[Run]:
    """All runs of the preset (optionally filtered), each config resolved and validated."""
    spec = preset.experiment
    chosen = [m for m in spec.methods if methods is None or m in methods]
    runs = []
    for sc in preset.scenarios:
        if scenarios is not None and sc.name not in scenarios:
            continue
        for seed in spec.seeds:
            if seeds is not None and seed not in seeds:
                continue
            edge = tuple(m for m in chosen if m in EDGE_FAMILY)
            if edge:
                runs.append(Run(sc.name, "edge", edge, seed, run_config(preset, sc, edge[0], seed),
                                out / sc.name / "edge" / f"seed{seed}"))
            for m in chosen:
                if m in EDGE_FAMILY:
                    continue
                cfg = run_config(preset, sc, "da_grpo" if m == "cloud_only" else m, seed)
                runs.append(Run(sc.name, m, (m,), seed, cfg, out / sc.name / m / f"seed{seed}"))
    return runs


def phase_end_steps(cfg: RunConfig) -> list[int]:
    """Global step count at the end of each phase."""
    return list(np.cumsum([p.steps for p in cfg.phases]).tolist())


def task_taus(cfg: RunConfig) -> dict[str, float]:
    """Each task's budget: the tau of the (first) phase that trains it, its last value for a schedule."""
    taus: dict[str, float] = {}
    for phase in cfg.phases:
        for t in phase.task_names():
            taus.setdefault(t, phase.tau_at(phase.steps - 1))
    return taus


# ----------------------------------------------------------------------------------------- running

def execute(run: Run, spec: ExperimentSpec) -> dict:
    """Run (or resume) one run and write its result.json: {method: {"evals": {tag: {task: {...}}}}}."""
    run.dir.mkdir(parents=True, exist_ok=True)
    _check_same_config(run)
    if run.group == "cloud_only":
        result = {"cloud_only": {"evals": cloud_only_evals(run.cfg)}}
    elif run.group == "edge":
        result = edge_family(run, spec)
    else:
        _train(run.cfg, run.dir, max_steps=None)
        result = {run.group: {"evals": trainer_evals(run.dir)}}
    from trainer.checkpoint import atomic_write_text

    atomic_write_text(run.dir / "result.json", json.dumps(result, indent=1))
    return result


def _check_same_config(run: Run) -> None:
    """Resuming a run whose preset changed would silently mix two settings: refuse."""
    from trainer.config import to_toml

    path = run.dir / "config.toml"
    if run.group != "cloud_only" and path.is_file() and path.read_text() != to_toml(run.cfg):
        raise UserError(f"{run.dir} was started with a different config than the preset now gives; "
                        "restore the preset or use another --out")


def _train(cfg: RunConfig, out: Path, max_steps: int | None):
    from trainer.train import train

    resume = (out / "state.json").is_file()
    return train(None if resume else cfg, out, resume=resume, max_steps=max_steps, progress=False)


def trainer_evals(out: Path) -> dict:
    from trainer.checkpoint import read_jsonl

    by_tag: dict[str, dict] = {}
    for e in read_jsonl(out / "evals.jsonl"):
        by_tag.setdefault(e["tag"], {})[e["task"]] = {
            k: e[k] for k in ("n", "local_n", "local_accuracy", "joint_accuracy", "collab_ratio")}
    return by_tag


def cloud_answers(cfg: RunConfig, examples, tag: str) -> list[bool]:
    """Whether the configured cloud answers each whole query correctly (no local prefix)."""
    from collab.protocol import HELP_TRIGGER
    from collab.scoring import score
    from trainer.cloud import make_cloud
    from trainer.prompting import messages

    cloud = make_cloud(cfg.cloud, cfg.train.seed)
    out = []
    for ex in examples:
        text = cloud.assist(ex, messages(ex), idempotency_key=f"route/{tag}/{ex.id}").completion
        out.append(score(ex, f"<think>\n{HELP_TRIGGER}", text, math_grader=cfg.train.math_grader).correct)
    return out


def _acc(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def routed_metrics(local_ok: list[bool], cloud_ok: list[bool], offload: list[bool]) -> dict:
    """local: accuracy over kept queries; joint: offloaded ones answered by the cloud."""
    n = len(local_ok)
    joint = [c if o else l for l, c, o in zip(local_ok, cloud_ok, offload)]
    kept = [l for l, o in zip(local_ok, offload) if not o]
    return {"n": n, "local_n": len(kept), "local_accuracy": _acc(kept), "joint_accuracy": _acc(joint),
            "collab_ratio": sum(offload) / n}


def test_examples(cfg: RunConfig, task: str, split: str = "test", n: int | None = None):
    from collab.tasks import get_task

    return get_task(task).examples(split, n=n or cfg.train.eval_n, seed=cfg.train.seed)


def cloud_only_evals(cfg: RunConfig) -> dict:
    evals = {}
    for k in range(len(cfg.phases)):
        tag = f"phase{k}_end"
        evals[tag] = {}
        for t in cfg.eval_task_names(k):
            ok = cloud_answers(cfg, test_examples(cfg, t), tag)
            evals[tag][t] = routed_metrics(ok, ok, [True] * len(ok)) | {"local_accuracy": _acc(ok),
                                                                        "local_n": len(ok)}
    return evals


def greedy_correct(ctx, examples) -> list[bool]:
    """The local model's greedy answers, graded with no cloud (a help request stays unanswered)."""
    from collab.scoring import score

    tc = ctx.cfg.train
    ok = []
    for i in range(0, len(examples), 16):
        chunk = examples[i:i + 16]
        outs = ctx.engine.generate([ctx.prompt_ids(ex) for ex in chunk], 1,
                                   tc.eval_max_new_tokens or tc.max_new_tokens, 0.0)
        ok += [score(ex, g[0].text, None, math_grader=tc.math_grader).correct for ex, g in zip(chunk, outs)]
    return ok


def edge_evals_at(ctx, spec: ExperimentSpec, methods: tuple[str, ...], k: int) -> dict:
    """{method: {task: metrics}} of the edge family on the model at the end of phase k."""
    from trainer.methods.routing import calibrate_threshold, naive_offload, router_offload
    from trainer.methods.router_classifier import fit_logistic, prompt_features

    cfg, tag, seed = ctx.cfg, f"phase{k}_end", ctx.cfg.train.seed
    tasks, taus = cfg.eval_task_names(k), task_taus(cfg)  # evaluated, and the router's data
    pad = ctx.tokenizer.pad_token_id
    router = None
    if "router" in methods and tasks:
        train = [ex for t in tasks for ex in test_examples(cfg, t, "train", spec.router_train_n)]
        fail = [not ok for ok in greedy_correct(ctx, train)]
        router = fit_logistic(prompt_features(ctx.model, [ctx.prompt_ids(ex) for ex in train], pad),
                              np.array(fail, dtype=float), l2=spec.router_l2)
        if router.single_class:
            log.warning("router at %s: every train query had the same outcome (%s); it routes at random",
                        tag, "fail" if fail[0] else "success")
    out: dict[str, dict] = {m: {} for m in methods}
    for t in tasks:
        tests = test_examples(cfg, t)
        local_ok = greedy_correct(ctx, tests)
        cloud_ok = cloud_answers(cfg, tests, tag)
        ids = [ex.id for ex in tests]
        if "edge_only" in methods:
            out["edge_only"][t] = routed_metrics(local_ok, cloud_ok, [False] * len(tests))
        if "naive_router" in methods:
            out["naive_router"][t] = routed_metrics(local_ok, cloud_ok, naive_offload(ids, taus[t], seed))
        if router is not None:
            val = test_examples(cfg, t, "val", spec.router_val_n)
            score_of = lambda exs: router.scores(  # noqa: E731
                prompt_features(ctx.model, [ctx.prompt_ids(ex) for ex in exs], pad), [ex.id for ex in exs], seed)
            val_scores = score_of(val)
            thr = calibrate_threshold(val_scores, taus[t])
            m = routed_metrics(local_ok, cloud_ok, router_offload(score_of(tests), thr))
            out["router"][t] = m | {"val_offload_rate": float(np.mean(np.asarray(val_scores) > thr)),
                                    "threshold": thr, "single_class": router.single_class}
    return out


def edge_family(run: Run, spec: ExperimentSpec) -> dict:
    from trainer.checkpoint import append_jsonl, read_jsonl

    routed_path = run.dir / "routed.jsonl"
    done = {r["tag"]: r for r in read_jsonl(routed_path)}
    for k, end in enumerate(phase_end_steps(run.cfg)):
        tag = f"phase{k}_end"
        if tag in done:
            continue
        ctx = _train(run.cfg, run.dir, max_steps=end)
        if ctx.step != end:
            raise RuntimeError(f"{run.dir}: expected the model at step {end}, found step {ctx.step}")
        rec = {"tag": tag, "step": end, "methods": edge_evals_at(ctx, spec, run.methods, k)}
        append_jsonl(routed_path, rec)
        done[tag] = rec
        del ctx
    return {m: {"evals": {tag: rec["methods"][m] for tag, rec in done.items()}} for m in run.methods}


def build_warmup(preset: Preset, out: Path, echo=print) -> Path:
    """Fit the format warm-up (trainer/warmup.py) once per experiment directory and save its LoRA
    adapter, the starting point of every run (resumable: an existing OUT/warmup/adapter is reused)."""
    from trainer.checkpoint import atomic_write_text
    from trainer.models import load_policy, save_trained_adapter
    from trainer.warmup import fit_warmup

    spec = preset.experiment.warmup
    target = out / "warmup" / "adapter"
    if (target / "adapter_config.json").is_file():
        return target
    cfg = run_config(preset, preset.scenarios[0], "da_grpo", spec.data_seed)
    tasks = spec.tasks or sorted({t for sc in preset.scenarios for p in run_config(preset, sc, "da_grpo", 0).phases
                                  for t in p.task_names()})
    model, tok = load_policy(cfg.model, seed=spec.data_seed)
    t0 = time.perf_counter()
    losses = fit_warmup(model, tok, tasks, spec,
                        lambda i, n, loss: echo(f"warm-up step {i}/{n}: loss {loss:.3f}"))
    tmp = target.with_name("adapter.tmp")
    save_trained_adapter(model, tmp)
    atomic_write_text(out / "warmup" / "losses.json", json.dumps(losses))
    atomic_write_text(out / "warmup" / "info.json", json.dumps(
        {"tasks": tasks, "seconds": round(time.perf_counter() - t0, 1)}))
    tmp.rename(target)
    return target


def run_all(preset: Preset, out: Path, *, methods=None, seeds=None, scenarios=None,
            report_only: bool = False, echo=print) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    if preset.experiment.warmup.steps:
        preset._warmup_dir = out / "warmup" / "adapter"
        if not report_only:
            build_warmup(preset, out, echo)
    runs = plan(preset, out, methods=methods, seeds=seeds, scenarios=scenarios)
    if not report_only:
        for i, run in enumerate(runs, 1):
            if run.done:
                echo(f"[{i}/{len(runs)}] {run.label}: finished earlier, skipped")
                continue
            t0 = time.perf_counter()
            echo(f"[{i}/{len(runs)}] {run.label}: running ({', '.join(run.methods)})")
            execute(run, preset.experiment)
            (run.dir / "wall_s.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
            echo(f"[{i}/{len(runs)}] {run.label}: done in {time.perf_counter() - t0:.0f} s")
    return write_report(preset, plan(preset, out), out)


# ----------------------------------------------------------------------------------------- report

METHOD_LABELS = {
    "cloud_only": "Cloud LLM (reference backend)", "edge_only": "Edge Tuning Only",
    "naive_router": "Edge Tuning w/ Naive Router", "router": "Edge Tuning w/ Router",
    "grpo_fixed": "Collaborative Training w/ GRPO", "gvpo": "Collaborative Training w/ GVPO",
    "gapg": "Collaborative Training w/ GAPG", "da_grpo": "Collaborative Training w/ DA-GRPO",
}


def mean_std(values) -> tuple[float | None, float | None, int]:
    v = [x for x in values if x is not None]
    if not v:
        return None, None, 0
    return float(np.mean(v)), (float(np.std(v, ddof=1)) if len(v) > 1 else None), len(v)


def fmt_ms(values, pct: bool = True) -> str:
    m, s, n = mean_std(values)
    if m is None:
        return "-"
    k, d = (100, 1) if pct else (1, 3)  # percentages with 1 decimal, ratios/lambda with 3
    return f"{k * m:.{d}f}" + ("" if s is None else f" ± {k * s:.{d}f}")


def forgetting_cells(evals: dict, cfg: RunConfig, task: str, which: str) -> tuple:
    """(during, post, forgetting) of one run for `task`; which = "local" or "joint"."""
    from collab.metrics import forgetting_rate

    first = next(k for k, p in enumerate(cfg.phases) if task in p.task_names())
    last = len(cfg.phases) - 1
    key = f"{which}_accuracy"
    during = evals.get(f"phase{first}_end", {}).get(task, {}).get(key)
    post = evals.get(f"phase{last}_end", {}).get(task, {}).get(key) if last > first else None
    forget = forgetting_rate(during, post) if during is not None and post is not None else None
    return during, post, forget


def tracking_gaps(metrics: list[dict]) -> list[dict]:
    """Per run of constant tau: mean |batch ratio - tau| over the last quarter of its steps."""
    from trainer.plots import tau_segments

    out = []
    for first, last, tau in tau_segments(metrics):
        seg = [m for m in metrics if first <= m["step"] <= last]
        tail = seg[len(seg) - max(1, len(seg) // 4):]
        out.append({"first_step": first, "last_step": last, "tau": tau, "tail_steps": len(tail),
                    "gap": float(np.mean([abs(m["collab_ratio"] - tau) for m in tail])),
                    "lambda_end": seg[-1]["lambda_next"]})
    return out


def collect(runs: list[Run]) -> dict:
    """{scenario: {method: {seed: {"evals", "metrics"}}}} for the finished runs."""
    from trainer.checkpoint import read_jsonl

    res: dict = {}
    for run in runs:
        if not run.done:
            continue
        result = json.loads((run.dir / "result.json").read_text())
        metrics = read_jsonl(run.dir / "metrics.jsonl")
        for m in run.methods:
            res.setdefault(run.scenario, {}).setdefault(m, {})[run.seed] = {
                "evals": result[m]["evals"], "metrics": metrics if m not in ("cloud_only",) else []}
    return res


def write_report(preset: Preset, runs: list[Run], out: Path) -> dict:
    from trainer.checkpoint import atomic_write_text

    spec = preset.experiment
    res = collect(runs)
    cfgs = {sc.name: run_config(preset, sc, "da_grpo", spec.seeds[0]) for sc in preset.scenarios}
    n_done = sum(r.done for r in runs)
    lines = [f"# Experiment `{spec.name}` ({spec.kind})", "",
             f"Finished runs: {n_done}/{len(runs)}" + ("" if n_done == len(runs) else
                                                       " -- INCOMPLETE: the numbers below cover only finished runs"),
             f"Cloud backend: {cfgs[preset.scenarios[0].name].cloud.backend}; "
             f"math grader: {cfgs[preset.scenarios[0].name].train.math_grader}; seeds: {spec.seeds}", ""]
    summary: dict = {"name": spec.name, "kind": spec.kind, "finished_runs": n_done, "total_runs": len(runs),
                     "scenarios": {}}
    for sc in preset.scenarios:
        cfg = cfgs[sc.name]
        task = sc.forgetting_task or cfg.phases[0].task_names()[0]
        block: dict = {"forgetting_task": task, "methods": {}}
        for m in spec.methods:
            seeds = res.get(sc.name, {}).get(m, {})
            row: dict = {"seeds": sorted(seeds)}
            for which in ("local", "joint"):
                cells = [forgetting_cells(v["evals"], cfg, task, which) for v in seeds.values()]
                row[which] = {name: [c[i] for c in cells] for i, name in enumerate(("during", "post", "forgetting"))}
            gaps = {s: tracking_gaps(v["metrics"]) for s, v in seeds.items() if v["metrics"]}
            row["tracking"] = gaps
            row["final_lambda"] = {s: v["metrics"][-1]["lambda_next"] for s, v in seeds.items() if v["metrics"]}
            block["methods"][m] = row
        summary["scenarios"][sc.name] = block
        lines += _scenario_markdown(sc.name, block, spec, cfg)
    if spec.kind == "table1":
        lines += _table1_markdown(summary, spec)
    figures = write_figures(preset, res, out)
    lines += ["", "Figures: " + ", ".join(f"`{p.name}`" for p in figures)]
    summary["figures"] = [p.name for p in figures]
    atomic_write_text(out / "results.json", json.dumps(summary, indent=1))
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    return summary


def _scenario_markdown(name: str, block: dict, spec: ExperimentSpec, cfg: RunConfig) -> list[str]:
    phases = " -> ".join(f"{p.name or '+'.join(p.task_names())} ({p.steps} steps, tau "
                         f"{p.tau if p.tau is not None else p.tau_schedule})" for p in cfg.phases)
    lines = [f"## Scenario `{name}`: {phases}", ""]
    # naive_router and router share edge_only's training run: list its training curve once
    rows = [(m, r) for m, r in block["methods"].items() if r["tracking"] and m not in ("naive_router", "router")]
    if rows:
        lines += ["Collaboration-ratio tracking during training: mean |batch ratio - tau| over the last "
                  "quarter of each tau segment (mean ± std over seeds).", "",
                  "| method | segment (steps) | tau | gap | lambda at segment end |", "|---|---|---|---|---|"]
        for m, r in rows:
            per_seed = list(r["tracking"].values())
            for i, seg in enumerate(per_seed[0]):
                vals = [g[i]["gap"] for g in per_seed if len(g) > i]
                lams = [g[i]["lambda_end"] for g in per_seed if len(g) > i]
                lines.append(f"| {m} | {seg['first_step']}-{seg['last_step']} | {seg['tau']:g} | "
                             f"{fmt_ms(vals, pct=False)} | {fmt_ms(lams, pct=False)} |")
        lines.append("")
    return lines


def _table1_markdown(summary: dict, spec: ExperimentSpec) -> list[str]:
    scen = list(summary["scenarios"].items())
    head = "| responses | method | " + " | ".join(
        f"{b['forgetting_task']} ({s}) during ↑ | post-switch ↑ | forgetting % ↓" for s, b in scen) + " |"
    lines = ["## Table 1 layout (accuracy %, mean ± std over finished seeds)", "", head,
             "|---|---|" + "---|---|---|" * len(scen)]
    for which, label in (("local", "local-solved only"), ("joint", "local-cloud joint")):
        for m in spec.methods:
            cells = []
            for _, b in scen:
                r = b["methods"][m][which]
                cells += [fmt_ms(r["during"]), fmt_ms(r["post"]), fmt_ms(r["forgetting"])]
            n = max(len(b["methods"][m]["seeds"]) for _, b in scen)
            lines.append(f"| {label} | {METHOD_LABELS[m]} (n={n}) | " + " | ".join(cells) + " |")
    return lines + [""]


def write_figures(preset: Preset, res: dict, out: Path) -> list[Path]:
    """lambda and collaboration ratio over steps per scenario and method (seed mean), against tau;
    for tau sweeps also final accuracy against tau (fig. 9)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from trainer.plots import moving_average

    spec, written = preset.experiment, []
    per_method = [m for m in spec.methods if m not in ("cloud_only", "naive_router", "router")]
    fig, axes = plt.subplots(2, len(preset.scenarios), figsize=(4.2 * len(preset.scenarios), 6),
                             squeeze=False, sharey="row")
    for j, sc in enumerate(preset.scenarios):
        top, bottom = axes[0][j], axes[1][j]
        tau_drawn = False
        for i, m in enumerate(per_method):
            runs = [v["metrics"] for v in res.get(sc.name, {}).get(m, {}).values() if v["metrics"]]
            if not runs:
                continue
            length = min(len(r) for r in runs)
            steps = [runs[0][t]["step"] for t in range(length)]
            lam = np.mean([[r[t]["lambda_next"] for t in range(length)] for r in runs], axis=0)
            ratio = np.mean([[r[t]["collab_ratio"] for t in range(length)] for r in runs], axis=0)
            if m == "da_grpo" or spec.kind != "table1":
                top.plot(steps, lam, color=f"C{i}", label=m)
            bottom.plot(steps, moving_average(list(ratio), 3), color=f"C{i}", label=f"{m} (avg 3)")
            if not tau_drawn:
                bottom.step(steps, [runs[0][t]["tau"] for t in range(length)], where="mid", ls="--",
                            color="black", label="tau")
                tau_drawn = True
        top.set(title=sc.name, ylabel="lambda" if j == 0 else None)
        bottom.set(xlabel="step", ylabel="collab. ratio (train batch)" if j == 0 else None, ylim=(-0.02, 1.02))
        top.legend(fontsize=7)
        bottom.legend(fontsize=7)
    fig.suptitle(f"{spec.name}: lambda (top) and collaboration ratio vs tau (bottom), mean over seeds")
    written.append(_save(fig, out / "lambda_ratio.png"))
    if spec.kind == "tau_sweep":
        written.append(_accuracy_vs_tau(preset, res, out))
    if spec.kind == "lambda_init":
        written.append(_overlay(preset, res, out, "da_grpo"))
    return written


def _overlay(preset: Preset, res: dict, out: Path, method: str) -> Path:
    """Fig. 4 layout: lambda (left) and batch ratio (right) of every scenario on shared axes."""
    import matplotlib.pyplot as plt

    from trainer.plots import moving_average

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    tau = None
    for i, sc in enumerate(preset.scenarios):
        runs = [v["metrics"] for v in res.get(sc.name, {}).get(method, {}).values() if v["metrics"]]
        if not runs:
            continue
        length = min(len(r) for r in runs)
        steps = [runs[0][t]["step"] for t in range(length)]
        left.plot(steps, np.mean([[r[t]["lambda_next"] for t in range(length)] for r in runs], axis=0),
                  color=f"C{i}", label=sc.name)
        ratio = np.mean([[r[t]["collab_ratio"] for t in range(length)] for r in runs], axis=0)
        right.plot(steps, moving_average(list(ratio), 3), color=f"C{i}", label=sc.name)
        tau = [runs[0][t]["tau"] for t in range(length)], steps
    if tau is not None:
        right.step(tau[1], tau[0], where="mid", ls="--", color="black", label="tau")
    left.set(xlabel="step", ylabel="lambda", title=f"{method}: lambda from each initialisation")
    right.set(xlabel="step", ylabel="collab. ratio (avg 3)", ylim=(-0.02, 1.02), title="collaboration ratio")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    return _save(fig, out / "lambda_init.png")


def _accuracy_vs_tau(preset: Preset, res: dict, out: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, m in enumerate(preset.experiment.methods):
        xs, local, joint = [], [], []
        for sc in preset.scenarios:
            cfg = run_config(preset, sc, "da_grpo", preset.experiment.seeds[0])
            task = sc.forgetting_task or cfg.phases[0].task_names()[0]
            seeds = res.get(sc.name, {}).get(m, {})
            if not seeds:
                continue
            xs.append(task_taus(cfg)[task])
            local.append(mean_std([forgetting_cells(v["evals"], cfg, task, "local")[0] for v in seeds.values()])[0])
            joint.append(mean_std([forgetting_cells(v["evals"], cfg, task, "joint")[0] for v in seeds.values()])[0])
        ax.plot(xs, joint, marker="o", color=f"C{i}", label=f"{m} joint")
        ax.plot(xs, local, marker="x", ls="--", color=f"C{i}", label=f"{m} local-solved")
    ax.set(xlabel="tau", ylabel="accuracy at phase end", ylim=(-0.02, 1.02), title="Accuracy vs collaboration ratio")
    ax.legend(fontsize=7)
    return _save(fig, out / "accuracy_vs_tau.png")


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
