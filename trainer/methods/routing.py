"""Evaluation-time offload rules of the router baselines (pure; no model in here).

- naive router: each query goes to the cloud with probability tau, decided by a hash of
  (seed, example id) so the same query gets the same decision in every evaluation of a run.
- trained router: offload the queries whose predicted failure score exceeds a threshold chosen on
  a validation split so that a share tau of it is offloaded (`calibrate_threshold`).
"""

from __future__ import annotations

import numpy as np

from trainer.hashdraw import hash_uniform


def uniform_draw(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by (seed, key)."""
    return hash_uniform(f"route:{seed}:{key}")


def naive_offload(ids: list[str], tau: float, seed: int) -> list[bool]:
    """Offload each query independently with probability tau."""
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must lie in [0, 1], got {tau}")
    return [uniform_draw(seed, i) < tau for i in ids]


def calibrate_threshold(val_scores, tau: float) -> float:
    """Threshold t such that the share of validation scores strictly above t is tau (rounded).

    With n scores, round(tau * n) of them are offloaded (ties aside); tau = 0 gives +inf.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must lie in [0, 1], got {tau}")
    s = np.sort(np.asarray(val_scores, dtype=np.float64))[::-1]  # descending
    k = int(round(tau * len(s)))
    if k == 0:
        return float("inf")
    if k >= len(s):
        return float("-inf")
    return float((s[k - 1] + s[k]) / 2)  # between the k-th and (k+1)-th highest


def router_offload(scores, threshold: float) -> list[bool]:
    return [float(x) > threshold for x in np.asarray(scores, dtype=np.float64)]
