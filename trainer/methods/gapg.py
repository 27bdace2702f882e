"""Collaborative training with the fixed hierarchical reward under GAPG (ref. [8], Fang et al. 2025).

  r_fix = hierarchical_reward(r, c, assist[kind])                    (fixed_reward.py)
  A_i   = r_fix_i - mean_g r_fix                                      group-level estimator of [8]
          (Prop. 3.1 in [8] = Result A.1 of the paper: G/(G-1) sum_i A_i grad log pi, no std scaling;
          the G/(G-1) factor is applied by the trainer's loss)
  A     = budget_filter(A, c, J = mean c of the batch, tau)           (gapg_filter.py: the budget
          rule, "adaptive prompt filtering"; its exact form is our stated assumption)

lambda is never used. Settings: train.method_args.assist_{math,code,mcq}.
"""

from __future__ import annotations

import numpy as np

from trainer.methods.args import HierarchicalArgs, method_args, parse_args
from trainer.methods.gapg_filter import budget_filter
from trainer.methods.grpo_fixed import GrpoFixed


class Gapg(GrpoFixed):
    name = "gapg"
    updates_lambda = False

    def advantages(self, rewards: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
        r = self.fixed_rewards(rewards, costs)
        adv = r - r.mean(axis=-1, keepdims=True)
        adv, _ = budget_filter(adv, costs, float(np.mean(costs)), self.tau)
        return adv


def make_method(cfg) -> Gapg:
    return Gapg(parse_args(HierarchicalArgs, method_args(cfg), "gapg"))
