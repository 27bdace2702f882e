"""The inference-time budget knob: the model's own wish to ask for help, a bias on it, and its control.

Where the help trigger may start (inside `<think>`, at a position where its first token has
probability at least e^-8: "I ..." after a newline, " I ..." after other text), the decoder scores
the whole trigger under the model: log p = sum of the trigger tokens' log-probabilities, and its
logit `s = log p - log(1 - p)`. With a help bias b the decoder asks there iff `s + b > 0`
(greedy; sampling asks with probability sigmoid(s + b)); where it does not ask, the trigger's
first token is banned at that position, so the text goes on without it. Along the path decoded
with every ask refused (b = -inf), a query's *ask score* is the largest s over its candidate positions;
the decoder then asks on query x iff score(x) + b > 0, exactly (for |b| < 8), so the help rate is monotone in b
and the bias that gives a help rate tau on a set of queries is a quantile of their scores.

Online (the edge agent), tau is the gateway's and can change at any time: the bias is the
calibration quantile at an effective target tau_eff, recomputed from the ask scores of the last
answers the device gave, and tau_eff is corrected by integral feedback from the ratio the gateway
measures (so a shift of the score distribution or a wrong calibration is absorbed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

BIAS_LIMIT = 50.0  # |bias| in logit units: beyond it every query asks (or none does)


def ask_logit(trigger_logp: float) -> float:
    """logit(p) = log p - log(1 - p) of the trigger's total log-probability (<= 0), stably."""
    if trigger_logp > 0:
        raise ValueError(f"a log-probability is <= 0, got {trigger_logp}")
    if trigger_logp == 0.0:
        return math.inf
    return trigger_logp - math.log(-math.expm1(trigger_logp))


def asks(score: float, bias: float) -> bool:
    """The greedy decision at the knob: ask iff score + bias > 0."""
    return score + bias > 0


def ask_probability(scores: list[float], bias: float) -> float:
    """P(ask) along one path whose candidate positions have logits `scores`: 1 - prod(1 - sigmoid(s + b))."""
    keep = 1.0
    for s in scores:
        z = s + bias
        keep *= 1.0 / (1.0 + math.exp(z)) if z < 700 else 0.0
    return 1.0 - keep


def help_rate(scores: list[float], bias: float) -> float:
    """Share of queries whose ask score passes the bias (greedy)."""
    if not scores:
        raise ValueError("no scores")
    return sum(asks(s, bias) for s in scores) / len(scores)


def calibrate_bias(scores: list[float], tau: float) -> float:
    """The bias whose greedy help rate on `scores` is the nearest achievable to tau.

    With the scores sorted from high to low and k = round(tau * n), the bias sits halfway
    between the k-th and the (k+1)-th score, so exactly k queries ask. A query with no line start
    (score -inf) never asks; the bias stays within +-BIAS_LIMIT.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must lie in [0, 1], got {tau}")
    if not scores:
        raise ValueError("calibration needs at least one score")
    desc = sorted(scores, reverse=True)
    k = round(tau * len(desc))
    upper = desc[k - 1] if k > 0 else math.inf  # the lowest score that must ask
    lower = desc[k] if k < len(desc) else -math.inf  # the highest score that must not
    if math.isinf(upper) and math.isinf(lower):
        return -BIAS_LIMIT if upper > 0 else BIAS_LIMIT
    if math.isinf(upper):
        threshold = lower + 1.0
    elif math.isinf(lower):
        threshold = upper - 1.0
    else:
        threshold = (upper + lower) / 2
    return max(-BIAS_LIMIT, min(BIAS_LIMIT, -threshold))



def sampled_ask_rate(scores: list[float], bias: float) -> float:
    """Mean of sigmoid(s + b): the help rate sampling predicts for queries with ask scores `scores`
    (one candidate position per query: the best one; a score of -inf never asks)."""
    if not scores:
        raise ValueError("no scores")
    total = 0.0
    for s in scores:
        z = s + bias
        total += 0.0 if z == -math.inf else (1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0)
    return total / len(scores)


def calibrate_bias_sampled(scores: list[float], tau: float, tol: float = 1e-6) -> float:
    """The bias b with mean sigmoid(s + b) = tau over `scores` (bisection; sampled_ask_rate is
    increasing in b), within +-BIAS_LIMIT: the knob's bias for *sampled* decoding, where the greedy
    `calibrate_bias` is a quantile. When tau is out of reach (too many -inf scores) the limit."""
    return _solve_bias(lambda b: sampled_ask_rate(scores, b), tau, tol)


def calibrate_bias_paths(paths: list[list[float]], tau: float, tol: float = 1e-6) -> float:
    """The bias b with mean ask_probability(path, b) = tau over sampled paths, each given by the
    ask scores of its candidate positions in order (every ask refused): the exact help rate of the
    sampled knob at b on those paths, since a path that has not asked yet went on with the trigger
    banned, as the refused path did. Bisection within +-BIAS_LIMIT; the limit when out of reach."""
    if not paths:
        raise ValueError("calibration needs at least one path")
    return _solve_bias(lambda b: sum(ask_probability(p, b) for p in paths) / len(paths), tau, tol)


def first_ask(scores: list[float], bias: float, draws: list[float]) -> int | None:
    """Where a path with candidate ask scores `scores` asks under the sampled knob at `bias`: the
    first j with draws[j] < sigmoid(scores[j] + b) (draws uniform on [0, 1)); None: it never asks."""
    if len(draws) < len(scores):
        raise ValueError(f"need a draw per candidate, got {len(draws)} for {len(scores)}")
    for j, (s, u) in enumerate(zip(scores, draws)):
        z = s + bias
        if z > -700 and u < 1.0 / (1.0 + math.exp(-z)):
            return j
    return None


def _solve_bias(rate, tau: float, tol: float) -> float:
    """The b in [-BIAS_LIMIT, BIAS_LIMIT] with rate(b) = tau for an increasing rate (bisection)."""
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must lie in [0, 1], got {tau}")
    lo, hi = -BIAS_LIMIT, BIAS_LIMIT
    if rate(lo) >= tau:
        return lo
    if rate(hi) <= tau:
        return hi
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if rate(mid) < tau:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def knob_feedback(bias: float, ratio: float, tau: float, gain: float, floor: float = 0.05) -> float:
    """Integral feedback on the bias from a measured help ratio, in logit units:
    b <- b - gain * (ratio - tau) / max(tau (1 - tau), floor), within +-BIAS_LIMIT.

    tau (1 - tau) is d(rate)/d(bias) of a logistic decision at rate tau, so gain 1 is one Newton
    step towards tau; below 1 it damps the per-step sampling noise of the measured ratio."""
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must lie in [0, 1], got {tau}")
    if gain < 0 or floor <= 0:
        raise ValueError(f"gain must be >= 0 and floor > 0, got {gain}, {floor}")
    step = gain * (ratio - tau) / max(tau * (1.0 - tau), floor)
    return max(-BIAS_LIMIT, min(BIAS_LIMIT, bias - step))


def rollout_bias(scores: list[float], tau: float, offset: float, anchor: float) -> tuple[float, float]:
    """The trainer's rollout knob after a step -> (anchor, bias): the anchor is the sampled
    calibration of the step's ask scores to tau (the previous `anchor` when no score is finite: no
    candidate position was met), the bias that anchor plus the integral `offset` (knob_feedback of
    the measured ratios), within +-BIAS_LIMIT."""
    if any(s > -math.inf for s in scores):
        anchor = calibrate_bias_sampled(scores, tau)
    return anchor, max(-BIAS_LIMIT, min(BIAS_LIMIT, anchor + offset))


@dataclass
class BiasController:
    """Per task: bias = calibration quantile of the recent ask scores at tau_eff, where tau_eff =
    tau + integral of the gateway-measured error (tau - ratio), clipped to [0, 1].

    `gain` is the integral gain per update; `window` the number of recent scores kept.
    """

    tau: float
    gain: float = 0.5
    window: int = 64
    integral: float = 0.0
    scores: list[float] = field(default_factory=list)

    @property
    def tau_eff(self) -> float:
        return min(1.0, max(0.0, self.tau + self.integral))

    def bias(self, default: float = 0.0, cap: float | None = None) -> float:
        """The bias for the next answer (`default` until a score has been seen); `cap` lowers the
        target for one request (a client's max help share), never raises it."""
        target = self.tau_eff if cap is None else min(self.tau_eff, cap)
        return calibrate_bias(self.scores, target) if self.scores else default

    def observe_score(self, score: float) -> None:
        self.scores = (self.scores + [score])[-self.window:]

    def set_tau(self, tau: float) -> None:
        """A new tau from the gateway: the integral of the old target's error is dropped."""
        if tau != self.tau:
            self.tau, self.integral = tau, 0.0

    def observe_ratio(self, ratio: float) -> None:
        """The gateway's measured help ratio over its window: integral feedback on tau_eff."""
        self.integral = min(1.0, max(-1.0, self.integral + self.gain * (self.tau - ratio)))
