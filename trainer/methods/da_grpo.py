"""DA-GRPO (paper eq. 7): group-centred reward minus lambda times group-centred cost; lambda is dual.

The advantage is `dual_advantages` (trainer/advantages.py) with the optional std scaling applied
after combining; the driver runs the dual update on lambda after each step (`updates_lambda`).
"""

from __future__ import annotations

import numpy as np

from trainer.advantages import dual_advantages, scale_advantages
from trainer.config import TrainConfig


class DaGrpo:
    """Paper eq. 7: group-centred r minus lambda times group-centred c, then optional std scaling."""

    name = "da_grpo"
    updates_lambda = True

    def __init__(self, std_scaling: str = "none"):
        self.std_scaling = std_scaling

    def begin_step(self, ctx, *, task: str, tau: float, prompts=None, rollouts=None) -> None:
        """DA-GRPO reads nothing of the step beyond (r, c, lambda)."""

    def advantages(self, rewards: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
        return scale_advantages(dual_advantages(rewards, costs, lam), self.std_scaling)


def make_method(cfg: TrainConfig) -> DaGrpo:
    return DaGrpo(cfg.std_scaling)
