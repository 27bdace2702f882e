"""Per-device RPC limits of one gateway process: a token bucket of calls and a cap on calls in flight.

Checked right after authentication, before any store or backend work, so one device key cannot
take a process's whole capacity (`maximum_concurrent_rpcs` bounds all devices together). State
is one small entry per device name the keys file holds; nothing is shared between processes
(the store's calls bucket, `collab.budget.bounded_assist`, is the fleet-wide bound).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class Throttled(Exception):
    """Over a per-device RPC limit: RESOURCE_EXHAUSTED with a retry-after trailer (no telemetry)."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


# How long a device over its in-flight cap waits before retrying (a call in flight takes ~ms).
IN_FLIGHT_RETRY_S = 0.05


def take(level: float, last: float, now: float, per_s: float, burst: int) -> tuple[bool, float]:
    """One token from a bucket of at most `burst`, refilled at `per_s` since `last`: (taken, level after)."""
    level = min(float(burst), level + max(0.0, now - last) * per_s)
    return (True, level - 1.0) if level >= 1.0 else (False, level)


@dataclass
class _Device:
    level: float
    last: float
    in_flight: int = 0


class DeviceLimiter:
    def __init__(self, per_s: float, burst: int, concurrent: int, clock: Callable[[], float] = time.monotonic):
        self.per_s, self.burst, self.concurrent, self.clock = per_s, burst, concurrent, clock
        self._devices: dict[tuple[str, bool], _Device] = {}

    @contextmanager
    def admit(self, name: str, admin: bool) -> Iterator[None]:
        """Hold one of the device's in-flight slots for the call; Throttled when over a limit."""
        now = self.clock()
        d = self._devices.setdefault((name, admin), _Device(float(self.burst), now))
        if d.in_flight >= self.concurrent:
            raise Throttled(f"{name!r} has {d.in_flight} calls in flight (limit {self.concurrent}): retry later",
                            IN_FLIGHT_RETRY_S)
        ok, d.level = take(d.level, d.last, now, self.per_s, self.burst)
        d.last = now
        if not ok:
            raise Throttled(f"{name!r} is over {self.per_s:g} calls/s (burst {self.burst}): retry later",
                            (1.0 - d.level) / self.per_s)
        d.in_flight += 1
        try:
            yield
        finally:
            d.in_flight -= 1
