"""Dual advantages (paper eq. 2 and 7) and the optional std scaling applied after combining.

Shapes: rewards and costs are (B, G) -- B prompts, G responses each -- or (G,) for one group.
"""

from __future__ import annotations

import numpy as np

STD_SCALINGS = ("none", "group", "batch")
_EPS = 1e-6  # keeps a constant group at exactly zero advantage instead of 0/0


def dual_advantages(rewards, costs, lam: float) -> np.ndarray:
    """A_i = (r_i - mean_g r) - lam * (c_i - mean_g c), group-wise over the last axis.

    Identical to group-centring the shaped reward r - lam*c (Proposition B.1); lam = 0 is centred
    GRPO without std scaling.
    """
    r = np.asarray(rewards, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if r.shape != c.shape:
        raise ValueError(f"rewards {r.shape} and costs {c.shape} differ in shape")
    if lam < 0:
        raise ValueError(f"lambda must be >= 0, got {lam}")
    a_r = r - r.mean(axis=-1, keepdims=True)
    a_c = c - c.mean(axis=-1, keepdims=True)
    return a_r - lam * a_c


def scale_advantages(adv, mode: str = "none") -> np.ndarray:
    """Divide combined advantages by a std: none (paper default), per group, or over the batch.

    Applied only after the reward and cost terms are combined, never to each term separately.
    """
    a = np.asarray(adv, dtype=np.float64)
    if mode == "none":
        return a
    if mode == "group":
        return a / (a.std(axis=-1, keepdims=True) + _EPS)
    if mode == "batch":
        return a / (a.std() + _EPS)
    raise ValueError(f"unknown std scaling {mode!r}; expected one of {STD_SCALINGS}")
