"""The studies of issue 19 on the simulated game: tables (JSON + Markdown) and figures (PNG).

Every cell averages the tracking gap over the four tau schedules of appendix D.3 (or names its
own) and over seeds. The gap of a run is the mean over its tau segments of mean |ratio - tau| over
the last quarter of the segment (the Fig. 10 analogue's number in docs/experiments.md); the bias
is |mean ratio - tau| over the same steps (the gap without the per-step sampling noise).

  schedules    Fig. 10 analogue: the paper's DA-GRPO under the four schedules, paper and micro scale
  lambda_init  Fig. 4 analogue: lambda_init 0 / 0.25 / 0.5 / 1 / 2 at tau 0.3 and over the schedules
  responses    the gap against responses per step (B x G), ascent and pid
  controllers  the paper's projected ascent against the PID Lagrangian, at paper, micro and micro-real scale
  classes      spread local success (the paper's models) against one shared p (0.5; 0, our SmolLM2)
  options      each option of issue 15 item 3 on its own, and all together (da_grpo_tracked)
  ask_init     exploration: the start policy's P(ask) (a drill warm-up leaves SmolLM2 near 0) against
               the gap, at the real micro runs' dual settings with 8 and with 310 steps per segment

Scales: paper = configs/sim/paper_scale.toml (128 x 8, eta_lambda 1e-2, 4 x 310 steps); micro =
configs/sim/micro_scale.toml (2 x 4, otherwise the same); micro_real = micro with the real micro
experiments' dual settings (eta_lambda 0.3, lambda_init 1.0, 3 steps per segment); micro_real8 the
same with 8 steps per segment (the Fig. 10 preset). Paper-scale
cells use one seed (a step's ratio there has sd ~0.015); the others `seeds`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainer.sim.config import SCHEDULES, load_sim_config, preset_path
from trainer.sim.run import simulate, summarize

STUDIES = ("schedules", "lambda_init", "responses", "controllers", "classes", "options", "ask_init")
SCALES = {"paper": ("paper_scale", []), "micro": ("micro_scale", []),
          "micro_real": ("micro_scale", ["train.eta_lambda=0.3", "train.lambda_init=1.0", "sim.segment_steps=3"]),
          "micro_real8": ("micro_scale", ["train.eta_lambda=0.3", "train.lambda_init=1.0", "sim.segment_steps=8"])}
CLASSES = {"spread (mean p 0.5)": None, "equal p 0.5": "sim.p_local=[0.5]", "equal p 0 (SmolLM2)": "sim.p_local=[0.0]"}
OPTIONS = {
    "da_grpo (paper)": [],
    "cost_baseline = tau": ["train.cost_baseline=\"tau\""],
    "cost_baseline = running": ["train.cost_baseline=\"running\""],
    "lambda_controller = pid": ["train.lambda_controller=\"pid\""],
    "skip_zero_steps": ["train.skip_zero_steps=true"],
    "da_grpo_tracked (all)": ["train.method=\"da_grpo_tracked\""],
}
PID = ["train.lambda_controller=\"pid\""]


def run_cell(scale: str, sets: list[str], schedules: dict[str, list[float]], seeds: int,
             user: list[str] = (), keep: bool = False) -> dict:
    """Mean gap / bias / accuracy over schedules x seeds; `keep`: also seed 0's records per schedule."""
    preset, scale_sets = SCALES[scale]
    n_seeds = 1 if scale == "paper" else seeds
    summaries, kept = [], {}
    for name, taus in schedules.items():
        for seed in range(n_seeds):
            cfg = load_sim_config(preset_path(preset), [*scale_sets, *sets, *user, f"sim.taus={taus}",
                                                         f"train.seed={seed}"])
            records = simulate(cfg)
            summaries.append(summarize(records, cfg))
            if keep and seed == 0:
                kept[name] = records
    gaps = [s["gap"] for s in summaries]
    cell = {"scale": scale, "responses": _responses(scale, sets), "seeds": n_seeds, "runs": len(summaries),
            "gap": float(np.mean(gaps)), "gap_sd": float(np.std(gaps)), "bias": float(np.mean([s["bias"] for s in summaries])),
            "accuracy": float(np.mean([s["accuracy"] for s in summaries])),
            "lambda_end": float(np.mean([s["lambda_end"] for s in summaries]))}
    return {**cell, "records": kept} if keep else cell


def _responses(scale: str, sets: list[str]) -> int:
    cfg = load_sim_config(preset_path(SCALES[scale][0]), [*SCALES[scale][1], *sets])
    return cfg.train.batch_prompts * cfg.train.G


def study_schedules(seeds, user, bar):
    rows, figs = [], {}
    for scale in ("paper", "micro"):
        for name, taus in SCHEDULES.items():
            cell = run_cell(scale, [], {name: taus}, seeds, user, keep=True)
            figs.setdefault(scale, {})[name] = cell.pop("records")[name]
            rows.append({"schedule": f"{name} {'>'.join(f'{t:g}' for t in taus)}", **cell})
            bar()
    return rows, figs


def study_lambda_init(seeds, user, bar):
    rows, figs = [], {}
    for scale in ("paper", "micro"):
        for lam in (0.0, 0.25, 0.5, 1.0, 2.0):
            const = run_cell(scale, [f"train.lambda_init={lam}", "sim.segment_steps=1240"], {"tau 0.3": [0.3]},
                             seeds, user, keep=True)
            figs.setdefault(scale, {})[lam] = const.pop("records")["tau 0.3"]
            sched = run_cell(scale, [f"train.lambda_init={lam}"], SCHEDULES, seeds, user)
            rows.append({"lambda_init": lam, **const, "gap_schedules": sched["gap"], "bias_schedules": sched["bias"]})
            bar()
    return rows, figs


def study_responses(seeds, user, bar):
    rows = []
    two = {k: SCHEDULES[k] for k in ("up", "mixed_b")}
    shapes = [(2, 4)] + [(b, 8) for b in (1, 2, 4, 8, 16, 32, 64, 128)]
    for b, g in shapes:
        for ctrl in ("ascent", "pid"):
            sets = [f"train.batch_prompts={b}", f"train.G={g}", f"train.lambda_controller=\"{ctrl}\""]
            cell = run_cell("micro", sets, two, seeds, user)
            rows.append({"B": b, "G": g, "controller": ctrl, **cell})
            bar()
    return rows, {}


def study_controllers(seeds, user, bar):
    rows, figs = [], {}
    for scale in ("paper", "micro", "micro_real"):
        for ctrl, sets in (("ascent (paper)", []), ("pid", PID)):
            cell = run_cell(scale, sets, SCHEDULES, seeds, user, keep=scale != "micro_real")
            if scale != "micro_real":
                figs.setdefault(scale, {})[ctrl] = cell.pop("records")["up"]
            rows.append({"controller": ctrl, **cell})
            bar()
    return rows, figs


def study_classes(seeds, user, bar):
    rows = []
    for scale in ("paper", "micro"):
        for label, setting in CLASSES.items():
            for ctrl, sets in (("ascent (paper)", []), ("pid", PID)):
                cell = run_cell(scale, [s for s in [setting] if s] + sets, SCHEDULES, seeds, user)
                rows.append({"classes": label, "controller": ctrl, **cell})
                bar()
    return rows, {}


def study_options(seeds, user, bar):
    rows = []
    for scale in ("paper", "micro"):
        for label, setting in (("spread (mean p 0.5)", None), ("equal p 0 (SmolLM2)", "sim.p_local=[0.0]")):
            for option, sets in OPTIONS.items():
                cell = run_cell(scale, [s for s in [setting] if s] + sets, SCHEDULES, max(1, seeds - 1), user)
                rows.append({"classes": label, "option": option, **cell})
                bar()
    return rows, {}


def study_ask_init(seeds, user, bar):
    rows = []
    for steps in (8, 310):
        for label, setting in (("spread (mean p 0.5)", None), ("equal p 0 (SmolLM2)", "sim.p_local=[0.0]")):
            for ask in (0.001, 0.01, 0.05, 0.1, 0.3):
                for method in ("da_grpo", "da_grpo_tracked"):
                    sets = [s for s in [setting] if s] + [f"sim.ask_init={ask}", f"sim.segment_steps={steps}",
                                                          f"train.method=\"{method}\""]
                    cell = run_cell("micro_real8", sets, SCHEDULES, seeds, user)
                    rows.append({"segment_steps": steps, "classes": label, "ask_init": ask, "method": method, **cell})
                    bar()
    return rows, {}


_RUNNERS = {"schedules": study_schedules, "lambda_init": study_lambda_init, "responses": study_responses,
            "controllers": study_controllers, "classes": study_classes, "options": study_options,
            "ask_init": study_ask_init}
_SIZES = {"schedules": 8, "lambda_init": 10, "responses": 18, "controllers": 6, "classes": 12, "options": 24, "ask_init": 40}


def run_studies(name: str, out: Path, seeds: int = 3, overrides: list[str] = (), progress: bool = True) -> list[Path]:
    """Run one study (or `all`) -> OUT/<study>.json, .md and figures; the written paths."""
    from dagrpo.errors import UserError

    names = STUDIES if name == "all" else (name,)
    if any(n not in STUDIES for n in names):
        raise UserError(f"unknown study {name!r}; known: {', '.join(STUDIES)}, all")
    out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    written = []
    for n in names:
        with tqdm(total=_SIZES[n], desc=f"study {n}", unit="cell", disable=not progress, dynamic_ncols=True) as bar:
            rows, figs = _RUNNERS[n](seeds, list(overrides), lambda: bar.update(1))
        (out / f"{n}.json").write_text(json.dumps({"study": n, "overrides": list(overrides), "rows": rows}, indent=1) + "\n")
        (out / f"{n}.md").write_text(markdown(n, rows))
        written += [out / f"{n}.json", out / f"{n}.md"]
        from trainer.sim import figures

        written += figures.draw(n, rows, figs, out)
    return written


_COLUMNS = {
    "schedules": ["schedule", "scale", "responses"],
    "lambda_init": ["lambda_init", "scale", "responses"],
    "responses": ["B", "G", "responses", "controller"],
    "controllers": ["controller", "scale", "responses"],
    "classes": ["classes", "controller", "scale"],
    "options": ["option", "classes", "scale"],
    "ask_init": ["segment_steps", "classes", "ask_init", "method"],
}


def markdown(name: str, rows: list[dict]) -> str:
    keys = _COLUMNS[name] + ["seeds", "runs", "gap", "bias", "accuracy", "lambda_end"]
    if name == "lambda_init":
        keys += ["gap_schedules", "bias_schedules"]
    lines = [f"## {name}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r[k]) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)
