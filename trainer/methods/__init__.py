"""Every training method, DA-GRPO and the paper's baselines, as pluggable advantage rules (`train.method`).

The driver calls `method.begin_step(ctx, task=, tau=, prompts=, rollouts=)` once per step, then
`method.advantages(rewards, costs, lam)` with (B, G) arrays, updates lambda only when
`method.updates_lambda`, then calls `method.end_step(ratio)`; `state_dict` / `load_state_dict` go
into the checkpoint (`Stateless` gives all three to a method that keeps nothing). Each module below exposes `make_method(cfg: TrainConfig) -> Method`, found
by name (`train.method = "grpo_fixed"` -> `trainer.methods.grpo_fixed`). Method settings come from
`train.method_args` (a table; each module documents its keys).

  da_grpo       the paper's dual advantage; lambda follows the budget        (da_grpo.py)
  da_grpo_tracked  DA-GRPO + cost baseline tau, PID lambda, skipping all-zero steps (da_grpo_tracked.py)
  da_grpo_knob  the paper's DA-GRPO, rollouts and evaluations with the help knob held at tau
                (train.rollout_knob, trainer/knob_loop.py; da_grpo_knob.py)
  edge_only     GRPO, no cloud: the help trigger earns nothing               (edge_only.py)
  naive_router  edge_only's training; offloads a random tau share at evaluation (routing.py)
  router        edge_only's training; a trained failure classifier offloads at evaluation
                (router_classifier.py, routing.py)
  grpo_fixed    fixed hierarchical reward, GRPO normalised advantages        (grpo_fixed.py)
  gvpo          fixed hierarchical reward, GVPO weights                       (gvpo.py)
  gapg          fixed hierarchical reward, GAPG estimator + budget filter     (gapg.py)
  cloud_only    no training: every query answered by the cloud (evaluation only)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from trainer.config import TrainConfig

METHODS = ("cloud_only", "edge_only", "naive_router", "router", "grpo_fixed", "gvpo", "gapg", "da_grpo",
           "da_grpo_tracked", "da_grpo_knob")
EDGE_FAMILY = ("edge_only", "naive_router", "router")  # one trained model, three evaluation rules
# Methods whose policy writes the help trigger itself (the edge family never asks, cloud_only always
# does): the ones a help bias can steer (trainer/experiment/knob.py).
SELF_ASKING = ("grpo_fixed", "gvpo", "gapg", "da_grpo", "da_grpo_tracked", "da_grpo_knob")


class Method(Protocol):
    name: str
    updates_lambda: bool  # whether the driver runs the dual update after each step

    def begin_step(self, ctx, *, task: str, tau: float, prompts=None, rollouts=None) -> None:
        """The step's context (its task, tau, prompts and rollouts), before `advantages`."""
        ...

    def advantages(self, rewards: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
        """(B, G) rewards and costs -> (B, G) advantages."""
        ...

    def end_step(self, ratio: float) -> None:
        """The step's measured help ratio, after its advantages (DA-GRPO's running baseline)."""
        ...

    def state_dict(self) -> dict:
        """What the checkpoint keeps of the method (state.json "method"); resume restores it."""
        ...

    def load_state_dict(self, state: dict) -> None:
        ...


class Stateless:
    """`end_step` and the checkpoint state of a method that keeps nothing between steps."""

    def end_step(self, ratio: float) -> None:
        """Nothing carries over to the next step."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, the checkpoint has {state}")


def make_method(cfg: TrainConfig) -> Method:
    try:
        module = importlib.import_module(f"trainer.methods.{cfg.method}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("trainer.methods", f"trainer.methods.{cfg.method}"):
            raise  # a real import error inside an existing method module
        from dagrpo.errors import UserError

        raise UserError(f"train.method: unknown method {cfg.method!r} (no trainer.methods.{cfg.method})") from exc
    return module.make_method(cfg)
