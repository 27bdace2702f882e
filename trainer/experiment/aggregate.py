"""Aggregation the report and the figures share: finished runs by seed, mean ± std, tracking gaps."""

from __future__ import annotations

import json

import numpy as np

from trainer.experiment.plan import Run


def finished_results(runs: list[Run]) -> dict:
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
                "evals": result[m]["evals"], "metrics": metrics if m != "cloud_only" else []}
    return res


def mean_std(values) -> tuple[float | None, float | None, int]:
    """Mean, sample std (ddof=1; None for one value) and count of the values that are not None."""
    v = [x for x in values if x is not None]
    if not v:
        return None, None, 0
    return float(np.mean(v)), (float(np.std(v, ddof=1)) if len(v) > 1 else None), len(v)


def tracking_gaps(metrics: list[dict]) -> list[dict]:
    """Per run of constant tau: mean |batch ratio - tau| over the last quarter of its steps, and
    beside it the same mean for a policy asking at exactly tau (`binomial_gap_floor` of each step's
    number of responses; None where metrics lack `responses`)."""
    from trainer.intervals import binomial_gap_floor
    from trainer.plots import tau_segments

    out = []
    for first, last, tau in tau_segments(metrics):
        seg = [m for m in metrics if first <= m["step"] <= last]
        tail = seg[len(seg) - max(1, len(seg) // 4):]
        out.append({"first_step": first, "last_step": last, "tau": tau, "tail_steps": len(tail),
                    "gap": float(np.mean([abs(m["collab_ratio"] - tau) for m in tail])),
                    "floor": (float(np.mean([binomial_gap_floor(m["responses"], tau) for m in tail]))
                              if all(m.get("responses") for m in tail) else None),
                    "lambda_end": seg[-1]["lambda_next"]})
    return out


def seed_mean_curves(seeds: dict) -> tuple[list[int], np.ndarray, np.ndarray, list[float]] | None:
    """(steps, lambda, batch ratio, tau) averaged over the seeds' training metrics; None without any."""
    runs = [v["metrics"] for v in seeds.values() if v["metrics"]]
    if not runs:
        return None
    length = min(len(r) for r in runs)
    steps = [runs[0][t]["step"] for t in range(length)]
    lam = np.mean([[r[t]["lambda_next"] for t in range(length)] for r in runs], axis=0)
    ratio = np.mean([[r[t]["collab_ratio"] for t in range(length)] for r in runs], axis=0)
    return steps, lam, ratio, [runs[0][t]["tau"] for t in range(length)]
