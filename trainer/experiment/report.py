"""The experiment's report: OUT/results.json and OUT/results.md (Table 1 layout for kind = "table1").

Mean ± std is over seeds (sample std, ddof=1; departure 3 of driver.py). Forgetting is measured on
each scenario's report task (trainer/forgetting.py); ratio tracking per tau segment
(aggregate.tracking_gaps). The report covers whatever has finished and says how many runs that is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainer.config import RunConfig
from trainer.experiment.aggregate import finished_results, tracking_gaps
from trainer.experiment.figures import write_figures
from trainer.experiment.knob import base_method, is_knob, report_methods
from trainer.experiment.plan import Run, task_taus
from trainer.experiment.preset import ExperimentSpec, Preset, report_config
from trainer.forgetting import task_forgetting
from trainer.methods import SELF_ASKING

METHOD_LABELS = {
    "cloud_only": "Cloud LLM (reference backend)", "edge_only": "Edge Tuning Only",
    "naive_router": "Edge Tuning w/ Naive Router", "router": "Edge Tuning w/ Router",
    "grpo_fixed": "Collaborative Training w/ GRPO", "gvpo": "Collaborative Training w/ GVPO",
    "gapg": "Collaborative Training w/ GAPG", "da_grpo": "Collaborative Training w/ DA-GRPO",
    "da_grpo_tracked": "Collaborative Training w/ DA-GRPO (tracked: tau baseline, PID lambda)",
    "da_grpo_knob": "Collaborative Training w/ DA-GRPO (help knob held at tau in rollouts)",
}


def method_label(method: str, spec: ExperimentSpec) -> str:
    """The row's name; with the knob on, every self-asking row says whether it is greedy or knobbed."""
    base = METHOD_LABELS[base_method(method)]
    if is_knob(method):
        return f"{base} [knob: bias calibrated to tau]"
    return f"{base} [greedy]" if spec.knob and method in SELF_ASKING else base


def write_report(preset: Preset, runs: list[Run], out: Path) -> dict:
    """Aggregate the finished runs, write results.json, results.md and the figures; the summary."""
    from trainer.checkpoint import atomic_write_text

    spec = preset.experiment
    res = finished_results(runs)
    cfgs = {sc.name: report_config(preset, sc) for sc in preset.scenarios}
    first = cfgs[preset.scenarios[0].name]
    n_done = sum(r.done for r in runs)
    lines = [f"# Experiment `{spec.name}` ({spec.kind})", "",
             f"Finished runs: {n_done}/{len(runs)}" + ("" if n_done == len(runs) else
                                                       " -- INCOMPLETE: the numbers below cover only finished runs"),
             f"Cloud backend: {first.cloud.backend}; math grader: {first.train.math_grader}; seeds: {spec.seeds}", ""]
    summary: dict = {"name": spec.name, "kind": spec.kind, "finished_runs": n_done, "total_runs": len(runs),
                     "scenarios": {}}
    for sc in preset.scenarios:
        block = scenario_block(res.get(sc.name, {}), spec, cfgs[sc.name], sc.report_task(cfgs[sc.name]))
        summary["scenarios"][sc.name] = block
        lines += _scenario_markdown(sc.name, block, cfgs[sc.name])
    if spec.kind == "table1":
        lines += _table1_markdown(summary, spec)
    else:
        summary["tracking"] = tracking_summary(summary)
        lines += _tracking_summary_markdown(summary["tracking"])
    figures = write_figures(preset, res, out)
    lines += ["", "Figures: " + ", ".join(f"`{p.name}`" for p in figures)]
    summary["figures"] = [p.name for p in figures]
    atomic_write_text(out / "results.json", json.dumps(summary, indent=1))
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    return summary


def scenario_block(res: dict, spec: ExperimentSpec, cfg: RunConfig, task: str) -> dict:
    """Per method: seeds, (during, post, forgetting) lists per response kind, tracking gaps, final lambda."""
    block: dict = {"forgetting_task": task, "methods": {}}
    for m in report_methods(spec):
        seeds = res.get(m, {})
        row: dict = {"seeds": sorted(seeds)}
        for which in ("local", "joint"):
            cells = [task_forgetting(v["evals"], cfg, task, which) for v in seeds.values()]
            row[which] = {name: [c[i] for c in cells] for i, name in enumerate(("during", "post", "forgetting"))}
        tau = task_taus(cfg).get(task)
        if base_method(m) in SELF_ASKING and tau is not None:
            row["help"] = help_vs_tau([v["evals"] for v in seeds.values()], task, tau)
        row["tracking"] = {s: tracking_gaps(v["metrics"]) for s, v in seeds.items() if v["metrics"]}
        row["final_lambda"] = {s: v["metrics"][-1]["lambda_next"] for s, v in seeds.items() if v["metrics"]}
        block["methods"][m] = row
    return block


def tracking_summary(summary: dict, tol: float = 0.1) -> dict:
    """Per method, over every tau segment of every scenario and seed: the number of segments, the
    mean last-quarter gap, the mean floor (a policy at exactly tau) and how many gaps are <= tol."""
    out: dict = {}
    for block in summary["scenarios"].values():
        for m, row in block["methods"].items():
            if m in ("naive_router", "router") or is_knob(m):  # their training run is another row's
                continue
            for segs in row.get("tracking", {}).values():
                acc = out.setdefault(m, {"gaps": [], "floors": []})
                acc["gaps"] += [g["gap"] for g in segs]
                acc["floors"] += [g["floor"] for g in segs if g.get("floor") is not None]
    return {m: {"segments": len(a["gaps"]), "mean_gap": float(np.mean(a["gaps"])),
                "mean_floor": float(np.mean(a["floors"])) if a["floors"] else None,
                "within": sum(g <= tol + 1e-12 for g in a["gaps"]), "tol": tol}
            for m, a in out.items() if a["gaps"]}


def _tracking_summary_markdown(tracking: dict) -> list[str]:
    if not tracking:
        return []
    lines = ["## Tracking over all segments", "",
             "Mean over every tau segment of every scenario and seed of the last-quarter gap "
             "|batch ratio - tau|, the floor a policy asking at exactly tau would show at the same numbers "
             "of responses, and the segments with a gap <= 0.1.", "",
             "| method | segments | mean gap | mean floor | segments with gap <= 0.1 |", "|---|---|---|---|---|"]
    for m, t in tracking.items():
        floor = "-" if t["mean_floor"] is None else f"{t['mean_floor']:.3f}"
        lines.append(f"| {m} | {t['segments']} | {t['mean_gap']:.3f} | {floor} | {t['within']}/{t['segments']} |")
    return lines + [""]


def help_vs_tau(evals_per_seed: list[dict], task: str, tau: float, tol: float = 0.1) -> dict:
    """The held-out help rate on `task` at the last evaluation that has it, per seed, against its
    tau: the rates, and how many seeds lie within +-tol of tau."""
    rates = []
    for evals in evals_per_seed:
        tags = [tag for tag, by_task in evals.items() if task in by_task and tag.endswith("_end")]
        if tags:
            rates.append(evals[max(tags, key=_phase_index)][task]["collab_ratio"])
    return {"tau": tau, "rates": rates, "within": sum(abs(r - tau) <= tol + 1e-12 for r in rates), "tol": tol}


def _phase_index(tag: str) -> int:
    return int(tag.removeprefix("phase").removesuffix("_end"))


def fmt_ms(values, pct: bool = True) -> str:
    """`mean ± half-width of the 95% t-interval (n=seeds behind the cell)`; '-' when none."""
    from trainer.intervals import t_interval

    v = [x for x in values if x is not None]
    if not v:
        return "-"
    m, half, n = t_interval(v)
    k, d = (100, 1) if pct else (1, 3)  # percentages with 1 decimal, ratios/lambda with 3
    return f"{k * m:.{d}f}" + ("" if half is None else f" ± {k * half:.{d}f}") + f" (n={n})"


def _scenario_markdown(name: str, block: dict, cfg: RunConfig) -> list[str]:
    phases = " -> ".join(f"{p.name or '+'.join(p.task_names())} ({p.steps} steps, tau "
                         f"{p.tau if p.tau is not None else p.tau_schedule})" for p in cfg.phases)
    lines = [f"## Scenario `{name}`: {phases}", ""]
    helped = [(m, r["help"]) for m, r in block["methods"].items() if "help" in r and r["help"]["rates"]]
    if helped:
        lines += [f"Held-out help rate on `{block['forgetting_task']}` at the last phase end vs its tau "
                  "(collaboration ratio of the test queries; mean ± 95% t-interval over seeds).", "",
                  "| method | tau | help rate | seeds within ±0.1 of tau |", "|---|---|---|---|"]
        for m, h in helped:
            lines.append(f"| {m} | {h['tau']:g} | {fmt_ms(h['rates'], pct=False)} | {h['within']}/{len(h['rates'])} |")
        lines.append("")
    # naive_router and router share edge_only's training run: list its training curve once
    rows = [(m, r) for m, r in block["methods"].items()
            if r["tracking"] and m not in ("naive_router", "router") and not is_knob(m)]
    if rows:
        lines += ["Collaboration-ratio tracking during training: mean |batch ratio - tau| over the last "
                  "quarter of each tau segment (mean ± 95% t-interval over seeds, n = seeds); floor: the "
                  "same gap for a policy asking at exactly tau, from the steps' numbers of responses "
                  "(E|Binomial(n, tau)/n - tau|).", "",
                  "| method | segment (steps) | tau | gap | floor | lambda at segment end |",
                  "|---|---|---|---|---|---|"]
        for m, r in rows:
            per_seed = list(r["tracking"].values())
            for i, seg in enumerate(per_seed[0]):
                vals = [g[i]["gap"] for g in per_seed if len(g) > i]
                lams = [g[i]["lambda_end"] for g in per_seed if len(g) > i]
                floor = "-" if seg.get("floor") is None else f"{seg['floor']:.3f}"
                lines.append(f"| {m} | {seg['first_step']}-{seg['last_step']} | {seg['tau']:g} | "
                             f"{fmt_ms(vals, pct=False)} | {floor} | {fmt_ms(lams, pct=False)} |")
        lines.append("")
    return lines


def _table1_markdown(summary: dict, spec: ExperimentSpec) -> list[str]:
    scen = list(summary["scenarios"].items())
    head = "| responses | method | " + " | ".join(
        f"{b['forgetting_task']} ({s}) during ↑ | post-switch ↑ | forgetting % ↓" for s, b in scen) + " |"
    lines = ["## Table 1 layout (accuracy %, mean ± 95% t-interval over finished seeds; n = seeds "
             "behind each cell)", "", head,
             "|---|---|" + "---|---|---|" * len(scen)]
    for which, label in (("local", "local-solved only"), ("joint", "local-cloud joint")):
        for m in report_methods(spec):
            cells = []
            for _, b in scen:
                r = b["methods"][m][which]
                cells += [fmt_ms(r["during"]), fmt_ms(r["post"]), fmt_ms(r["forgetting"])]
            n = max(len(b["methods"][m]["seeds"]) for _, b in scen)
            lines.append(f"| {label} | {method_label(m, spec)} (n={n}) | " + " | ".join(cells) + " |")
    return lines + [""]
