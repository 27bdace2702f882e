"""DA-GRPO (paper eq. 7): group-centred reward minus lambda times group-centred cost; lambda is dual.

The advantage is `dual_advantages` (trainer/advantages.py) with the optional std scaling applied
after combining; the driver runs the dual update on lambda after each step (`updates_lambda`).
"""

from __future__ import annotations

import numpy as np

from trainer.advantages import dual_advantages, ema_update, scale_advantages
from trainer.config import TrainConfig


class DaGrpo:
    """Paper eq. 7: group-centred r minus lambda times the cost advantage, then optional std scaling.

    The cost baseline (trainer/advantages.py) is the paper's group mean by default; `tau` reads the
    step's budget (begin_step), `running` an EMA of the measured ratios of earlier steps
    (end_step), started at the first step's tau and kept in the checkpoint (state_dict).
    """

    updates_lambda = True

    def __init__(self, std_scaling: str = "none", cost_baseline: str = "group", ema: float = 0.9,
                 name: str = "da_grpo"):
        self.name, self.std_scaling, self.cost_baseline, self.ema = name, std_scaling, cost_baseline, ema
        self.tau: float | None = None
        self.running: float | None = None

    def begin_step(self, ctx=None, *, tau: float, task: str = "", prompts=None, rollouts=None) -> None:
        """The step's tau (the `tau` and `running` cost baselines read it)."""
        self.tau = tau

    def baseline_value(self) -> float | None:
        if self.cost_baseline == "group":
            return None
        if self.tau is None:
            raise RuntimeError(f"the {self.cost_baseline} cost baseline needs begin_step(tau=...) before advantages")
        if self.cost_baseline == "running" and self.running is not None:
            return self.running
        return self.tau

    def advantages(self, rewards: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
        adv = dual_advantages(rewards, costs, lam, self.cost_baseline, self.baseline_value())
        return scale_advantages(adv, self.std_scaling)

    def end_step(self, ratio: float) -> None:
        """The step's measured ratio J_c_hat, after its advantages: it feeds later steps' baseline only."""
        self.running = ema_update(self.running, ratio, self.ema)

    def state_dict(self) -> dict:
        return {"running": self.running}

    def load_state_dict(self, state: dict) -> None:
        self.running = state["running"]


def make_method(cfg: TrainConfig) -> DaGrpo:
    """`da_grpo` (the paper) and `da_grpo_tracked` (trainer/methods/da_grpo_tracked.py)."""
    return DaGrpo(cfg.std_scaling, cfg.cost_baseline, cfg.cost_baseline_ema, name=cfg.method)
