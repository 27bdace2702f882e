"""`dagrpo experiment`: every (scenario, method, seed) of a preset in one harness; resumable; report.

Algorithm:
  0. (optional) Fit the format warm-up adapter once (departure 4; warmup_adapter.py).
  1. Load the preset (preset.py): [experiment] (methods, seeds, report kind), [base] (a training
     config) and [[scenarios]]. Every run's config is resolved and validated up front.
  2. Plan runs, one directory each under OUT/<scenario>/<method>/seed<k> (plan.py):
     - collaborative methods (grpo_fixed, gvpo, gapg, da_grpo, da_grpo_tracked): `trainer.train.train` with
       train.method = the method (training.py); accuracies come from the trainer's own phase-end
       evaluations;
     - the edge family (edge_only, naive_router, router) shares ONE trained model per (scenario,
       seed) in OUT/<scenario>/edge/seed<k> (train.method = edge_only): training stops at each
       phase end, the three evaluation rules run on that model, training resumes (edge.py);
     - cloud_only trains nothing: the cloud answers every test query (evaluation.py).
     - with `knob = true`, each self-asking method (grpo_fixed, gvpo, gapg, da_grpo, da_grpo_tracked)
       also stops at each phase end, where its model is evaluated a second time with the help bias
       calibrated to tau (row `<method>+knob`, knob.py), then resumes.
  3. A run whose `result.json` exists is finished and skipped (resume after interruption); an
     unfinished training run resumes from its `state.json`.
  4. Aggregate whatever has finished into OUT/results.json, OUT/results.md (laid out like the
     paper's table for `kind = "table1"`) and PNG figures; the report says how many runs are done
     (aggregate.py, report.py, figures.py).
Forgetting rate (collab.metrics.forgetting_rate) = (during - post) / during on the scenario's
`forgetting_task`, during = end of the phase that trains it, post = end of the last phase
(trainer/forgetting.py).

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

import json
import time
from pathlib import Path

from dagrpo.errors import UserError
from trainer.experiment.edge import edge_family
from trainer.experiment.evaluation import cloud_only_evals
from trainer.experiment.knob import train_with_knob
from trainer.experiment.plan import Run, plan
from trainer.experiment.preset import ExperimentSpec, Preset
from trainer.experiment.report import write_report
from trainer.experiment.training import train_run, trainer_evals
from trainer.experiment.warmup_adapter import build_warmup


def run_all(preset: Preset, out: Path, *, methods=None, seeds=None, scenarios=None,
            report_only: bool = False, echo=print) -> dict:
    """Warm up, run every planned run not finished yet (optionally filtered), then report all of them."""
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


def execute(run: Run, spec: ExperimentSpec) -> dict:
    """Run (or resume) one run and write its result.json: {method: {"evals": {tag: {task: {...}}}}}."""
    from trainer.checkpoint import atomic_write_text

    run.dir.mkdir(parents=True, exist_ok=True)
    _check_same_config(run)
    if run.group == "cloud_only":
        result = {"cloud_only": {"evals": cloud_only_evals(run.cfg)}}
    elif run.group == "edge":
        result = edge_family(run, spec)
    elif len(run.methods) > 1:  # a self-asking method and its knob row
        result = train_with_knob(run, spec)
    else:
        train_run(run.cfg, run.dir, max_steps=None)
        result = {run.group: {"evals": trainer_evals(run.dir)}}
    atomic_write_text(run.dir / "result.json", json.dumps(result, indent=1))
    return result


def _check_same_config(run: Run) -> None:
    """Resuming a run whose preset changed would silently mix two settings: refuse."""
    from trainer.config import to_toml

    path = run.dir / "config.toml"
    if run.group != "cloud_only" and path.is_file() and path.read_text() != to_toml(run.cfg):
        raise UserError(f"{run.dir} was started with a different config than the preset now gives; "
                        "restore the preset or use another --out")
