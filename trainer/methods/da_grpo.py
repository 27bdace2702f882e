"""The pluggable advantage rule: (rewards, costs, lambda, groups) -> per-response advantages.

The driver calls `method.advantages(rewards, costs, lam)` with (B, G) arrays and updates lambda
only when `method.updates_lambda`. DA-GRPO lives here; baselines (GRPO with a fixed assistance
reward, routers, ...) are modules in `trainer/methods/` exposing `make_method(cfg) -> Method`,
found by name (`train.method = "grpo_fixed"` -> `trainer.methods.grpo_fixed`).
"""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

from trainer.advantages import dual_advantages, scale_advantages
from trainer.config import TrainConfig


class Method(Protocol):
    name: str
    updates_lambda: bool  # whether the driver runs the dual update after each step

    def advantages(self, rewards: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
        """(B, G) rewards and costs -> (B, G) advantages."""
        ...


class DaGrpo:
    """Paper eq. 7: group-centred r minus lambda times group-centred c, then optional std scaling."""

    name = "da_grpo"
    updates_lambda = True

    def __init__(self, std_scaling: str = "none"):
        self.std_scaling = std_scaling

    def advantages(self, rewards: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
        return scale_advantages(dual_advantages(rewards, costs, lam), self.std_scaling)


def make_method(cfg: TrainConfig) -> Method:
    if cfg.method == "da_grpo":
        return DaGrpo(cfg.std_scaling)
    try:
        module = importlib.import_module(f"trainer.methods.{cfg.method}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("trainer.methods", f"trainer.methods.{cfg.method}"):
            raise  # a real import error inside an existing method module
        from dagrpo.errors import UserError

        raise UserError(f"train.method: unknown method {cfg.method!r} (no trainer.methods.{cfg.method})") from exc
    return module.make_method(cfg)
