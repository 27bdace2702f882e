"""GRPO's normalised group advantage (Shao et al. 2024, DeepSeekMath, eq. for outcome supervision).

A_i = (r_i - mean_g r) / (std_g r + eps), std the population std over the group (last axis): the
centred reward with DA-GRPO's own per-group std scaling (trainer/advantages.py, one eps for both).
A group with equal rewards gets exactly zero advantage.
"""

from __future__ import annotations

import numpy as np

from trainer.advantages import scale_advantages


def grpo_advantages(rewards) -> np.ndarray:
    """(B, G) or (G,) rewards -> normalised advantages of the same shape."""
    r = np.asarray(rewards, dtype=np.float64)
    return scale_advantages(r - r.mean(axis=-1, keepdims=True), "group")
