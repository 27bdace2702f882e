"""The projected dual ascent step on lambda (paper eq. 3 / Algorithm 1 line 27)."""

from __future__ import annotations


def dual_update(lam: float, j_c: float, tau: float, lr: float) -> float:
    """lambda <- max(0, lambda + lr * (J_c_hat - tau)).

    `j_c` is the measured cost rate of the batch (share of responses that asked for help with a
    valid format), `tau` the budget; lambda rises when usage exceeds the budget.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must lie in [0, 1], got {tau}")
    if lr < 0:
        raise ValueError(f"the dual learning rate must be >= 0, got {lr}")
    return max(0.0, lam + lr * (j_c - tau))
