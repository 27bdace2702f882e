"""The dual variable lambda: the paper's projected ascent step (eq. 3) and the controllers that own it.

`dual_update` is the paper's formula as a pure function. The driver and the simulator hold a
controller object instead (`make_controller(train_cfg)`), whose whole state is explicit
(`to_dict` / `controller_from_dict`) so a checkpoint restores it exactly:

  ascent  lambda <- max(0, lambda + eta_lambda * (J_c_hat - tau))          (the paper, eq. 3)
  pid     the PID Lagrangian of Stooke, Achiam & Abbeel (2020), Algorithm 2:
            e = J_c_hat - tau;  I <- clip(I + e, 0, lambda_max / K_i);  D = max(0, J_c_hat - J_c_prev)
            lambda = clip(K_p * e + K_i * I + K_d * D, 0, lambda_max)
          with K_i = eta_lambda (so K_p = K_d = 0 is the paper's ascent), a warm start
          I_0 = lambda_init / K_i (the first step uses lambda_init), and anti-windup: the integral
          never goes below 0 nor past the point where K_i * I alone reaches the cap, so it
          unwinds as soon as the error changes sign. The proportional term reacts within the
          step (ascent needs 1/eta steps to move lambda by the error); the derivative term acts
          only on a rising cost, damping overshoot.
"""

from __future__ import annotations

import math


def dual_update(lam: float, j_c: float, tau: float, lr: float) -> float:
    """lambda <- max(0, lambda + lr * (J_c_hat - tau)).

    `j_c` is the measured cost rate of the batch (share of responses that asked for help with a
    valid format), `tau` the budget; lambda rises when usage exceeds the budget.
    """
    _check_tau(tau)
    if lr < 0:
        raise ValueError(f"the dual learning rate must be >= 0, got {lr}")
    return max(0.0, lam + lr * (j_c - tau))


def _check_tau(tau: float) -> None:
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must lie in [0, 1], got {tau}")


class AscentController:
    """The paper's projected dual ascent (eq. 3); state: lambda."""

    kind = "ascent"

    def __init__(self, lam: float, eta: float):
        self.lam, self.eta = float(lam), float(eta)

    def update(self, j_c: float, tau: float) -> float:
        self.lam = dual_update(self.lam, j_c, tau, self.eta)
        return self.lam

    def to_dict(self) -> dict:
        return {"kind": self.kind, "lam": self.lam, "eta": self.eta}


class PidController:
    """PID Lagrangian (Stooke et al. 2020) with warm start, cap and anti-windup; see the module docstring."""

    kind = "pid"

    def __init__(self, kp: float, ki: float, kd: float, lam_init: float, lam_max: float = math.inf,
                 integral: float | None = None, prev_jc: float | None = None, lam: float | None = None):
        if ki <= 0:
            raise ValueError(f"the PID controller needs K_i = eta_lambda > 0 (its warm start is lambda_init / K_i), got {ki}")
        if min(kp, kd) < 0 or lam_max <= 0 or not 0 <= lam_init <= lam_max:
            raise ValueError(f"PID gains must be >= 0 and 0 <= lambda_init <= lambda_max, got "
                             f"kp={kp} kd={kd} lambda_init={lam_init} lambda_max={lam_max}")
        self.kp, self.ki, self.kd, self.lam_max = float(kp), float(ki), float(kd), float(lam_max)
        self.integral = lam_init / ki if integral is None else float(integral)
        self.prev_jc = prev_jc
        self.lam = float(lam_init if lam is None else lam)

    def update(self, j_c: float, tau: float) -> float:
        _check_tau(tau)
        e = j_c - tau
        self.integral = min(max(0.0, self.integral + e), self.lam_max / self.ki)
        d = 0.0 if self.prev_jc is None else max(0.0, j_c - self.prev_jc)
        self.prev_jc = float(j_c)
        self.lam = min(self.lam_max, max(0.0, self.kp * e + self.ki * self.integral + self.kd * d))
        return self.lam

    def to_dict(self) -> dict:
        return {"kind": self.kind, "lam": self.lam, "kp": self.kp, "ki": self.ki, "kd": self.kd,
                "lam_max": self.lam_max, "integral": self.integral, "prev_jc": self.prev_jc}


def controller_from_dict(d: dict):
    """The exact controller that `to_dict` described (resume)."""
    d = dict(d)
    kind = d.pop("kind")
    if kind == "ascent":
        return AscentController(d["lam"], d["eta"])
    if kind == "pid":
        return PidController(d["kp"], d["ki"], d["kd"], lam_init=d["lam"], lam_max=d["lam_max"],
                             integral=d["integral"], prev_jc=d["prev_jc"], lam=d["lam"])
    raise ValueError(f"unknown lambda controller {kind!r}")


def make_controller(tc):
    """A fresh controller from a TrainConfig (or anything with the same fields: the simulator's)."""
    if tc.lambda_controller == "ascent":
        return AscentController(tc.lambda_init, tc.eta_lambda)
    return PidController(tc.pid_kp, tc.eta_lambda, tc.pid_kd, tc.lambda_init, tc.lambda_max)
