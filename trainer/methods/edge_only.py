"""Edge tuning only (paper section 4): GRPO on the local model with no cloud.

Advantage: GRPO's normalised group advantage (grpo_norm.py) of the no-cloud reward
(fixed_reward.no_cloud_reward): with no cloud to answer it, a help request is a response without
an answer and scores the format penalty -0.1, so the trigger is never rewarded. The driver still
sends the group's help requests to the configured cloud (the protocol is unchanged), but their
answers cannot reach the reward; run it against the in-process reference cloud so no metered
budget is spent. lambda is never used or updated.
At evaluation (trainer/experiment/edge.py) help requests stay unanswered: local = joint accuracy.
"""

from __future__ import annotations

import numpy as np

from trainer.methods import Stateless
from trainer.methods.fixed_reward import no_cloud_reward
from trainer.methods.grpo_norm import grpo_advantages


class EdgeOnly(Stateless):
    updates_lambda = False

    def __init__(self, name: str = "edge_only"):
        self.name = name

    def begin_step(self, ctx, *, task: str, tau: float, prompts=None, rollouts=None) -> None:
        """The no-cloud reward reads nothing of the step beyond (r, c)."""

    def advantages(self, rewards: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
        return grpo_advantages(no_cloud_reward(rewards, costs))


def make_method(cfg) -> EdgeOnly:
    return EdgeOnly()
