"""Dual advantages (paper eq. 2 and 7), the cost baseline options, and the optional std scaling.

Shapes: rewards and costs are (B, G) -- B prompts, G responses each -- or (G,) for one group.

Cost baselines (`train.cost_baseline`; the paper: group). The policy-gradient estimator
(loss.py, eq. 8) multiplies every advantage by G/(G-1). With the group mean,
(G/(G-1)) * (c_i - mean_g c) = c_i - mean_{j != i} c_j: a leave-one-out baseline, so the
cost term estimates grad J_c without bias. The other baselines subtract a number b that does
not depend on the step's samples; they are scaled by (G-1)/G here so that, after the
estimator's G/(G-1), the cost term is exactly (c_i - b) grad log pi(y_i), again unbiased for any
such b. All three give the same expected gradient; they differ in variance and in which groups
carry signal:
  group    zero cost signal in a uniform group (all ask, or none): a batch of all-ask groups
           cannot be pushed away from asking, whatever lambda is. Lowest variance when groups
           are mixed (the baseline tracks the prompt).
  tau      b = tau: every help request over budget costs (1 - tau) > 0, so an all-ask group is
           pushed away from asking (and an all-local one toward it); more variance, since b is
           not the group's own mean.
  running  b = an exponential moving average of the measured ratio J_c_hat of earlier steps
           (ema_update): close to the variance-minimising constant b = E[c]; an all-ask group is
           pushed while the recent ratio is below 1, but once every response asks the average
           reaches 1 and the push fades (tau does not fade).
"""

from __future__ import annotations

import numpy as np

STD_SCALINGS = ("none", "group", "batch")
COST_BASELINES = ("group", "tau", "running")
_EPS = 1e-6  # keeps a constant group at exactly zero advantage instead of 0/0


def cost_advantages(costs, baseline: str = "group", value: float | None = None) -> np.ndarray:
    """A_c: c_i - mean_g c (group), or (G-1)/G * (c_i - value) (tau / running; value = b)."""
    c = np.asarray(costs, dtype=np.float64)
    if baseline == "group":
        return c - c.mean(axis=-1, keepdims=True)
    if baseline not in COST_BASELINES:
        raise ValueError(f"unknown cost baseline {baseline!r}; expected one of {COST_BASELINES}")
    if value is None:
        raise ValueError(f"the {baseline} cost baseline needs its value b")
    g = c.shape[-1]
    return (g - 1) / g * (c - value)


def dual_advantages(rewards, costs, lam: float, cost_baseline: str = "group",
                    baseline_value: float | None = None) -> np.ndarray:
    """A_i = (r_i - mean_g r) - lam * A_c_i, group-wise over the last axis (A_c: cost_advantages).

    With the paper's group baseline this is group-centring the shaped reward r - lam*c
    (Proposition B.1); lam = 0 is centred GRPO without std scaling.
    """
    r = np.asarray(rewards, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if r.shape != c.shape:
        raise ValueError(f"rewards {r.shape} and costs {c.shape} differ in shape")
    if lam < 0:
        raise ValueError(f"lambda must be >= 0, got {lam}")
    a_r = r - r.mean(axis=-1, keepdims=True)
    return a_r - lam * cost_advantages(c, cost_baseline, baseline_value)


def ema_update(running: float | None, ratio: float, beta: float) -> float:
    """running <- beta * running + (1 - beta) * ratio; the first measured ratio starts it."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"the EMA factor must lie in [0, 1), got {beta}")
    return ratio if running is None else beta * running + (1.0 - beta) * ratio


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
