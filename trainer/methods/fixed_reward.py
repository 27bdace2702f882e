"""Reward rewrites of the baselines, from the driver's (r, c) of paper eqs. 13-14.

Shapes: (B, G) or (G,). `r` is eq. 13 on the composed response (1 correct and well formatted,
-0.1 format violated, 0 otherwise) and `c` is eq. 14 (1 when help was asked with a valid format),
so `c == 1` marks exactly the well-formatted help requests, and for those `r` is 1 when the cloud's
composed answer was right and 0 when it was wrong.
"""

from __future__ import annotations

import numpy as np


def hierarchical_reward(rewards, costs, assist: float) -> np.ndarray:
    """Fixed hierarchical reward of the collaborative baselines (paper section 4, table 3; ref. [8]).

    correct locally -> 1; help asked (valid format) and the composed answer correct -> `assist`;
    help asked and wrong -> 0; format violated -> -0.1 (unchanged). This is eq. 12 with the
    lambda-dependent value alpha_a - lambda*alpha_c frozen to the constant `assist` and no charge
    when the cloud is wrong (the paper's table 3 gives only the assistance reward).
    """
    r, c = _as_pair(rewards, costs)
    return np.where(c > 0, assist * (r > 0), r)


def no_cloud_reward(rewards, costs) -> np.ndarray:
    """Edge tuning only: no cloud answers, so a help request is a response without an answer, and
    it scores what any response without a well-formed answer scores: the format penalty -0.1
    (r = -ALPHA_F when c = 1). Not 0: that would rank asking above every malformed answer, and a
    model that mostly writes malformed answers (SmolLM2-135M) learns to ask for a help that never
    comes (a training collaboration ratio of 0.9-1.0 at the micro scale)."""
    from collab.rewards import ALPHA_F

    r, c = _as_pair(rewards, costs)
    return np.where(c > 0, -ALPHA_F, r)


def _as_pair(rewards, costs) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rewards, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if r.shape != c.shape:
        raise ValueError(f"rewards {r.shape} and costs {c.shape} differ in shape")
    return r, c
