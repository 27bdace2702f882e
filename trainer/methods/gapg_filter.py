"""GAPG's budget rule (Fang et al. 2025, ref. [8]: "adaptive prompt filtering"), as we implement it.

The DA-GRPO paper only names GAPG ("group-adaptive policy gradient", ref. [8]) and cites its
estimator (Result A.1 = Proposition 3.1 in [8]): G/(G-1) * sum_i (r_i - mean r) grad log pi,
unnormalised. [8]'s abstract says adaptive prompt filtering "enforces the constraint on cloud LLM
usage" and supplies complementary signals against collapse to all-local or all-cloud. Its exact
rule is not in the paper we implement; ASSUMED here (closest faithful version we can state):

  Let J be the batch's measured help ratio and tau the budget. A prompt's group *pushes toward
  offloading* when the help-seeking responses (c = 1) get a positive summed advantage, and *away*
  when they get a negative one.
  - J > tau: drop (zero the advantages of) the groups that push toward offloading;
  - J < tau: drop the groups that push away from offloading;
  - groups without help requests, or with J == tau, are kept.
So prompts whose signal would move usage further from the budget are filtered out of the step.
"""

from __future__ import annotations

import numpy as np


def budget_filter(adv, costs, ratio: float, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """(B, G) advantages and costs -> (filtered advantages, (B,) bool mask of kept prompts)."""
    a = np.asarray(adv, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if a.shape != c.shape or a.ndim != 2:
        raise ValueError(f"advantages {a.shape} and costs {c.shape} must both be (B, G)")
    push = (a * (c > 0)).sum(axis=-1)  # (B,) summed advantage of the help requests
    if ratio > tau:
        keep = push <= 0
    elif ratio < tau:
        keep = push >= 0
    else:
        keep = np.ones(a.shape[0], dtype=bool)
    return a * keep[:, None], keep
