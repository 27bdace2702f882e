"""Budget arithmetic of the cloud gateway: the ratio credit bucket and the usage window. Pure.

The cloud grants each (device, task) at most a share `tau` of its responses as help requests.

- Credit bucket (enforce mode): every reported response earns `tau` credit, capped at `burst`;
  every Assist spends 1 credit and is refused when less than 1 credit is left. A fresh budget
  starts full (`burst`), so over N responses a device gets at most `tau * N + burst` cloud calls.
  Meter mode runs the same bookkeeping but never refuses (credit floors at 0).
- `tau` may follow a schedule keyed on the device's lifetime responses for the task (paper D.3's
  time-varying tau): a report earns credit at the tau in force *before* the report.
- Window: responses are counted in consecutive windows of `window` responses; the window ratio is
  help/responses over the current (open) window plus the previous full one, i.e. over the last
  `window`..`2*window` responses (O(1) state, exact in Lua and SQL alike).

All quantities are integers: tau and credit are in parts per million (PPM), so the Redis Lua
script, the SQLite transaction and this module agree bit for bit (no float rounding at the
refusal boundary). `cloud_gateway/store/budget.lua` implements `report` and `assist` again and
tests/cloud_gateway/test_store_agreement.py checks the three agree on a sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

PPM = 1_000_000  # one help request's worth of credit, and tau = 1.0
Mode = Literal["meter", "enforce"]
MODES: tuple[str, ...] = ("meter", "enforce")


def to_ppm(x: float) -> int:
    """A tau or credit value in [0, inf) as integer parts per million (round half to even)."""
    return round(x * PPM)


@dataclass(frozen=True)
class Policy:
    """How one task is budgeted; the same for every device."""

    schedule: tuple[tuple[int, int], ...]  # ((from_responses, tau_ppm), ...), sorted, first from 0
    mode: Mode = "meter"
    burst_ppm: int = 4 * PPM  # credit cap
    window: int = 256  # responses per ratio window

    def __post_init__(self) -> None:
        problem = policy_problem(self)
        if problem:
            raise ValueError(problem)


def policy_problem(p: Policy) -> str | None:
    """Why a policy is invalid (a message naming the field), or None."""
    if not p.schedule or p.schedule[0][0] != 0:
        return "schedule: needs a first step from response 0"
    starts = [s for s, _ in p.schedule]
    if starts != sorted(set(starts)):
        return "schedule: steps must have strictly increasing from_responses"
    if any(not 0 <= t <= PPM for _, t in p.schedule):
        return "tau: must lie in [0, 1]"
    if p.mode not in MODES:
        return f"mode: must be one of {MODES}, got {p.mode!r}"
    if p.burst_ppm < PPM:
        return "burst: must be at least 1 (one help request), or nothing is ever allowed"
    if p.window < 1:
        return "window_responses: must be at least 1"
    return None


@dataclass(frozen=True)
class Counters:
    """Usage state of one (device, task). Field order is the storage order (Lua, SQL)."""

    responses: int = 0
    help_requests: int = 0
    cloud_calls: int = 0
    denials: int = 0
    tokens: int = 0
    credit_ppm: int = 0
    win_responses: int = 0  # open window
    win_help: int = 0
    prev_responses: int = 0  # previous full window
    prev_help: int = 0


FIELDS: tuple[str, ...] = tuple(Counters.__dataclass_fields__)


def fresh(policy: Policy) -> Counters:
    """A budget nobody has touched yet: full bucket."""
    return Counters(credit_ppm=policy.burst_ppm)


def tau_at(schedule: tuple[tuple[int, int], ...], responses: int) -> int:
    """Tau (PPM) in force after `responses` lifetime responses: the last step starting at or before."""
    tau = schedule[0][1]
    for start, value in schedule:
        if start > responses:
            break
        tau = value
    return tau


def report(c: Counters, p: Policy, responses: int, help_requests: int) -> Counters:
    """Count a report of `responses` answers, `help_requests` of which asked for help."""
    earned = tau_at(p.schedule, c.responses) * responses
    win_r, win_h = c.win_responses + responses, c.win_help + help_requests
    prev_r, prev_h = c.prev_responses, c.prev_help
    if win_r >= p.window:  # close the window
        prev_r, prev_h, win_r, win_h = win_r, win_h, 0, 0
    return replace(
        c,
        responses=c.responses + responses,
        help_requests=c.help_requests + help_requests,
        credit_ppm=min(p.burst_ppm, c.credit_ppm + earned),
        win_responses=win_r,
        win_help=win_h,
        prev_responses=prev_r,
        prev_help=prev_h,
    )


def assist(c: Counters, p: Policy) -> tuple[bool, Counters]:
    """Decide one Assist: (allowed, new counters). Enforce mode refuses below 1 credit."""
    if c.credit_ppm >= PPM:
        return True, replace(c, cloud_calls=c.cloud_calls + 1, credit_ppm=c.credit_ppm - PPM)
    if p.mode == "meter":
        return True, replace(c, cloud_calls=c.cloud_calls + 1, credit_ppm=0)
    return False, replace(c, denials=c.denials + 1)


def add_tokens(c: Counters, tokens: int) -> Counters:
    return replace(c, tokens=c.tokens + tokens)


def ratio(help_requests: int, responses: int) -> float:
    """help/responses; 0 when nothing was reported yet."""
    return help_requests / responses if responses else 0.0


def window_ratio(c: Counters) -> float:
    return ratio(c.win_help + c.prev_help, c.win_responses + c.prev_responses)


def lifetime_ratio(c: Counters) -> float:
    return ratio(c.help_requests, c.responses)
