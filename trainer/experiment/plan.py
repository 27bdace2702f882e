"""The runs of a preset, one directory each, and the phase facts every run shares.

One run per (scenario, method, seed) under OUT/<scenario>/<method>/seed<k>, except the edge family
(edge_only, naive_router, router): they share ONE trained model per (scenario, seed) in
OUT/<scenario>/edge/seed<k> and differ only in how that model is evaluated. cloud_only trains
nothing. A run whose `result.json` exists is finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.config import RunConfig
from trainer.experiment.preset import Preset, run_config
from trainer.methods import EDGE_FAMILY, SELF_ASKING

KNOB_SUFFIX = "+knob"  # a self-asking method evaluated with the calibrated help knob (knob.py)


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
                produced = (m, knob_label(m)) if spec.knob and m in SELF_ASKING else (m,)
                runs.append(Run(sc.name, m, produced, seed, cfg, out / sc.name / m / f"seed{seed}"))
    return runs


def knob_label(method: str) -> str:
    return method + KNOB_SUFFIX


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
