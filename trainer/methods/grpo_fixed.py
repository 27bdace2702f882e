"""Collaborative training with the fixed hierarchical reward under GRPO (paper section 4, table 1).

  r_fix = hierarchical_reward(r, c, assist[kind of the step's task])    (fixed_reward.py)
  A_i   = (r_fix_i - mean_g r_fix) / (std_g r_fix + eps)               (grpo_norm.py; Shao et al. 2024)

then the trainer's policy gradient (loss.py, eq. 8 estimator with A). The assistance reward is
0.2 math / 0.05 code / 0.4 QA by default (paper table 3), set with
train.method_args.assist_{math,code,mcq}. lambda is never used (updates_lambda = False; the
advantage ignores `lam`).
"""

from __future__ import annotations

import numpy as np

from trainer.methods.args import HierarchicalArgs, NeedsStep, method_args, parse_args, task_kind
from trainer.methods.fixed_reward import hierarchical_reward
from trainer.methods.grpo_norm import grpo_advantages


class GrpoFixed(NeedsStep):
    name = "grpo_fixed"
    updates_lambda = False

    def __init__(self, args: HierarchicalArgs):
        self.args = args

    def fixed_rewards(self, rewards: np.ndarray, costs: np.ndarray) -> np.ndarray:
        self._require_step()
        return hierarchical_reward(rewards, costs, self.args.assist(task_kind(self.task)))

    def advantages(self, rewards: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
        return grpo_advantages(self.fixed_rewards(rewards, costs))


def make_method(cfg) -> GrpoFixed:
    return GrpoFixed(parse_args(HierarchicalArgs, method_args(cfg), "grpo_fixed"))
