"""Budget arithmetic of the cloud gateway: help measured, the ratio credit bucket, the window. Pure.

The cloud grants each (device, task) at most a share `tau` of its responses as help requests
(a help request: `collab.help`, paper eq. 14).

- Who counts what (DESIGN.md section 7). Responses only the device can count: it reports them.
  Help the gateway measures itself: every Assist it decides (allowed or refused) carries the
  number of help requests it serves (`group_help`; a call without a group is one), and names the
  usage report that will count its responses (`report_key`, the report's idempotency key). A
  report's help, as the gateway counts it, is `report_help(seen, reported, offline)`: the help
  of the Assist calls that named it (`seen`, each call counted once, by its idempotency key),
  plus the requests the device says never reached the gateway (`offline`: cloud unreachable or
  disabled), believed only as far as the device's own total allows. A report whose device count
  disagrees is a *mismatch*: counted, and the gateway's number is the one that counts.
- Credit bucket (enforce mode): every reported response earns `tau` credit, capped at `burst`;
  an Assist serving k help requests spends k credits (at least 1: a call that serves no help
  request still costs one), and is refused when less than 1 credit is left. Credit may end below
  zero (a debt the next responses repay), so over N responses a device gets at most
  `tau * N + burst + (k_max - 1)` help requests served, k_max its largest group. Meter mode runs
  the same bookkeeping but never refuses (credit floors at 0).
- `tau` may follow a schedule keyed on the device's lifetime responses for the task (paper D.3's
  time-varying tau): a report earns credit at the tau in force *before* the report, and that tau
  is the one its responses were budgeted at (the trainer's dual update uses it).
- Claims are bounded (DESIGN.md section 9: a device is trusted only for what only it can know).
  Per (device, task) two token buckets refill with time, whatever the device reports: a report
  is believed for at most as many responses as the *claim* bucket holds (`Limits.responses_*`);
  the rest are `excess`, counted nowhere else (no credit, no schedule progress, no ratio), and the
  report is `flagged`. An allowed Assist also takes one token from the *calls* bucket
  (`Limits.assists_*`), in both modes; without one it is refused and `throttled`, spending no
  credit. So over T seconds a device gets at most `assists_burst + assists_per_s * T` cloud calls
  per task, however many responses it claims. Rates are PPM of a unit per millisecond, the clock
  the store's (`now_ms`).
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
    help_requests: int = 0  # the gateway's count: measured from Assist traffic (+ offline, bounded)
    cloud_calls: int = 0
    denials: int = 0
    tokens: int = 0
    credit_ppm: int = 0
    win_responses: int = 0  # open window
    win_help: int = 0
    prev_responses: int = 0  # previous full window
    prev_help: int = 0
    reported_help: int = 0  # help requests the device reported (help_requests: the gateway's count)
    mismatches: int = 0  # reports whose device count disagreed with the gateway's
    claim_ppm: int = 0  # claim bucket: responses a report may still claim (PPM)
    calls_ppm: int = 0  # calls bucket: Assist grants left (PPM)
    clock_ms: int = 0  # when both buckets were last refilled (0: never: they start full)
    flagged: int = 0  # reports that claimed more responses than the claim bucket held
    excess: int = 0  # responses claimed beyond the claim bucket (not counted anywhere else)
    throttled: int = 0  # Assist calls refused because the calls bucket was empty


FIELDS: tuple[str, ...] = tuple(Counters.__dataclass_fields__)


def fresh(policy: Policy) -> Counters:
    """A budget nobody has touched yet: full bucket."""
    return Counters(credit_ppm=policy.burst_ppm)


@dataclass(frozen=True)
class Limits:
    """Time-based bounds of one (device, task), the same for every device (gateway config)."""

    responses_rate: int  # claim refill, PPM of a response per ms (100 responses/s = 100_000)
    responses_burst: int  # claim bucket size, responses
    assists_rate: int  # calls refill, PPM of an Assist per ms
    assists_burst: int  # calls bucket size, Assist calls

    def __post_init__(self) -> None:
        if min(self.responses_rate, self.assists_rate) < 1 or min(self.responses_burst, self.assists_burst) < 1:
            raise ValueError("limits: rates and bursts must be at least 1")
        if max(self.responses_burst, self.assists_burst) > MAX_BURST:
            raise ValueError(f"limits: a burst must be at most {MAX_BURST} (exact in Lua's doubles)")


MAX_BURST = 10**9  # bucket levels stay below 1e15 PPM: floor(level / PPM) is exact in Lua's doubles


def per_ms_ppm(per_s: float) -> int:
    """A rate per second as PPM per millisecond (0.001/s resolution)."""
    return round(per_s * PPM / 1000)


def refill(c: Counters, lim: Limits, now_ms: int) -> Counters:
    """Both buckets refilled to `now_ms` (a clock behind the last refill adds nothing).

    rate * elapsed may exceed 2**53 in Lua (a first refill from clock 0); it is then far above
    the cap, which min() returns exactly, so Lua and Python still agree."""
    dt = max(0, now_ms - c.clock_ms)
    return replace(c, claim_ppm=min(lim.responses_burst * PPM, c.claim_ppm + lim.responses_rate * dt),
                   calls_ppm=min(lim.assists_burst * PPM, c.calls_ppm + lim.assists_rate * dt),
                   clock_ms=max(c.clock_ms, now_ms))


def claim(c: Counters, responses: int) -> tuple[int, Counters]:
    """(responses believed, counters): at most what the claim bucket holds; the rest is excess."""
    believed = min(responses, c.claim_ppm // PPM)
    excess = responses - believed
    return believed, replace(c, claim_ppm=c.claim_ppm - believed * PPM, excess=c.excess + excess,
                             flagged=c.flagged + (excess > 0))


def bounded_report(c: Counters, p: Policy, lim: Limits, now_ms: int, responses: int, help_requests: int,
                   reported_help: int) -> tuple[int, Counters]:
    """A report through the claim bucket: (responses believed, counters after `report`)."""
    believed, c = claim(refill(c, lim, now_ms), responses)
    return believed, report(c, p, believed, help_requests, reported_help)


def bounded_assist(c: Counters, p: Policy, lim: Limits, now_ms: int, help_requests: int = 1) -> tuple[bool, Counters]:
    """An Assist through the credit rule, then the calls bucket: a call the credit allows is
    still refused (`throttled`, no credit spent) when the calls bucket is empty."""
    c = refill(c, lim, now_ms)
    allowed, after = assist(c, p, help_requests)
    if not allowed:
        return False, after
    if c.calls_ppm < PPM:
        return False, replace(c, throttled=c.throttled + 1)
    return True, replace(after, calls_ppm=after.calls_ppm - PPM)


def was_throttled(allowed: bool, mode: str, credit_ppm: int) -> bool:
    """Why a refused Assist was refused: the calls bucket (True) or the credit (False)."""
    return not allowed and (mode == "meter" or credit_ppm >= PPM)


def tau_at(schedule: tuple[tuple[int, int], ...], responses: int) -> int:
    """Tau (PPM) in force after `responses` lifetime responses: the last step starting at or before."""
    tau = schedule[0][1]
    for start, value in schedule:
        if start > responses:
            break
        tau = value
    return tau


def assist_help(group_help: int, group_size: int) -> int:
    """Help requests one Assist serves: its group's count; a call without a group (size 0) is one."""
    return group_help if group_size else 1


def report_help(seen: int, reported: int, offline: int) -> int:
    """The gateway's help count of one report.

    `seen`: help of the Assist calls that named the report; `reported`: the device's count;
    `offline`: how many of those the device says never reached the gateway. An honest device has
    reported - offline <= seen <= reported (an Assist whose answer was lost may have landed) and
    gets exactly `reported`; a device that under-reports gets `seen`; offline requests beyond the
    device's own total are not believed."""
    return max(seen, min(reported, seen + offline))


def report(c: Counters, p: Policy, responses: int, help_requests: int, reported_help: int | None = None) -> Counters:
    """Count a report of `responses` answers: `help_requests` as the gateway counts them
    (`report_help`), `reported_help` as the device said (None: the same)."""
    reported_help = help_requests if reported_help is None else reported_help
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
        reported_help=c.reported_help + reported_help,
        mismatches=c.mismatches + (help_requests != reported_help),
    )


def assist(c: Counters, p: Policy, help_requests: int = 1) -> tuple[bool, Counters]:
    """Decide one Assist serving `help_requests`: (allowed, new counters). Enforce mode refuses
    below 1 credit; an allowed call spends max(1, help_requests) credits."""
    charge = max(1, help_requests) * PPM
    if c.credit_ppm >= PPM:
        credit = c.credit_ppm - charge
        return True, replace(c, cloud_calls=c.cloud_calls + 1,
                             credit_ppm=credit if p.mode == "enforce" else max(0, credit))
    if p.mode == "meter":
        return True, replace(c, cloud_calls=c.cloud_calls + 1, credit_ppm=0)
    return False, replace(c, denials=c.denials + 1)


def late_help(c: Counters, help_requests: int) -> Counters:
    """Help of an Assist that names no report, or one already counted (a step run again after a
    crash): it goes straight into the gateway's count, never into a report's ratio."""
    return replace(c, help_requests=c.help_requests + help_requests, win_help=c.win_help + help_requests)


def add_tokens(c: Counters, tokens: int) -> Counters:
    return replace(c, tokens=c.tokens + tokens)


def ratio(help_requests: int, responses: int) -> float:
    """help/responses; 0 when nothing was reported yet."""
    return help_requests / responses if responses else 0.0


def window_ratio(c: Counters) -> float:
    return ratio(c.win_help + c.prev_help, c.win_responses + c.prev_responses)


def lifetime_ratio(c: Counters) -> float:
    return ratio(c.help_requests, c.responses)
