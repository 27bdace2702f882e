"""GVPO (Zhang et al. 2025, "GVPO: Group Variance Policy Optimization", arXiv:2504.19599).

GVPO minimises, per group of k responses,

    L(theta) = 1/2 * sum_i [ (R_i - mean R) - beta * (s_i - mean s) ]^2 ,   s_i = log pi_theta(y_i|x) - log pi_ref(y_i|x)

(the variance of the implicit reward beta*s matched to the variance of R). Its gradient is

    grad L = -beta * sum_i [ (R_i - mean R) - beta * (s_i - mean s) ] * grad log pi_theta(y_i|x)

because sum_i of a centred term times grad(mean s) vanishes. So one GVPO step is the trainer's
policy gradient (loss.py) with the weight `gvpo_weights` below (computed with s detached) in place
of the advantage, scaled by beta. We fold the constant factor beta into the learning rate (AdamW is
invariant to a constant gradient scale), so the weights are (R_i - mean R) - beta * (s_i - mean s).
"""

from __future__ import annotations

import numpy as np


def gvpo_weights(rewards, logratio, beta: float) -> np.ndarray:
    """(B, G) rewards and sequence log-ratios s -> (B, G) per-response GVPO weights."""
    r = np.asarray(rewards, dtype=np.float64)
    s = np.asarray(logratio, dtype=np.float64)
    if r.shape != s.shape:
        raise ValueError(f"rewards {r.shape} and log-ratios {s.shape} differ in shape")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    return (r - r.mean(axis=-1, keepdims=True)) - beta * (s - s.mean(axis=-1, keepdims=True))
