"""Tau changes during a fleet's load, pure: the `--tau-at` syntax and the schedule it makes.

`--tau-at SECONDS:TAU` sets every fleet task's tau to TAU at SECONDS after the load starts;
`--tau-at SECONDS:TASK=TAU` sets one task's. The fleet applies each change through the gateway's
admin SetTau (what `dagrpo gateway set-tau TASK TAU` does), so the devices learn the new tau from
their next telemetry, as they would in a deployment.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

SYNTAX = "expected 'SECONDS:TAU' or 'SECONDS:TASK=TAU' (e.g. '60:0.1' or '60:math=0.1')"


class TauChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at_s: float = Field(ge=0, description="seconds after the load starts")
    tau: float = Field(ge=0, le=1, description="the new tau")
    task: str | None = Field(None, min_length=1, description="one task; None: every fleet task")


def parse_tau_at(text: str) -> TauChange:
    """'60:0.1' -> TauChange(60, 0.1); '60:math=0.1' -> TauChange(60, 0.1, 'math'). ValueError
    naming what is wrong otherwise."""
    at, sep, rest = text.partition(":")
    if not sep or not at.strip() or not rest.strip():
        raise ValueError(f"{SYNTAX}, got {text!r}")
    task, eq, tau = rest.rpartition("=")
    if eq and not task.strip():
        raise ValueError(f"no task before '=' in {text!r}: {SYNTAX}")
    at_s, tau_v = _number(at, "SECONDS", text), _number(tau, "TAU", text)
    if at_s < 0:
        raise ValueError(f"SECONDS must be >= 0, got {at_s:g} in {text!r}")
    if not 0.0 <= tau_v <= 1.0:
        raise ValueError(f"TAU must lie in [0, 1], got {tau_v:g} in {text!r}")
    return TauChange(at_s=at_s, tau=tau_v, task=task.strip() or None)


def _number(s: str, what: str, text: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise ValueError(f"{what} {s.strip()!r} is not a number in {text!r}: {SYNTAX}") from None


def tau_timeline(tau: float, changes: Sequence[TauChange], tasks: Sequence[str]) -> dict[str, list[tuple[float, float]]]:
    """task -> [(from_s, tau), ...] in time order, starting with (0, tau): the tau in force at the
    gateway for each task over the load. A change at 0 replaces the starting tau."""
    out = {t: [(0.0, tau)] for t in tasks}
    for c in sorted(changes, key=lambda c: c.at_s):
        for t in (tasks if c.task is None else [c.task]):
            steps = out[t]
            if steps[-1][0] == c.at_s:
                steps[-1] = (c.at_s, c.tau)
            else:
                steps.append((c.at_s, c.tau))
    return out
