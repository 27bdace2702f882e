"""GRPO's normalised group advantage (Shao et al. 2024, DeepSeekMath, eq. for outcome supervision).

A_i = (r_i - mean_g r) / (std_g r + eps), std the population std over the group (last axis).
A group with equal rewards gets exactly zero advantage.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-4  # as in TRL / DeepSeekMath implementations; keeps 0/0 at 0


def grpo_advantages(rewards) -> np.ndarray:
    """(B, G) or (G,) rewards -> normalised advantages of the same shape."""
    r = np.asarray(rewards, dtype=np.float64)
    centred = r - r.mean(axis=-1, keepdims=True)
    return centred / (r.std(axis=-1, keepdims=True) + EPS)
