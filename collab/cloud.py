"""The device's view of the cloud: one small interface, several implementations.

- `trainer.cloud.InProcessCloud`: the reference backend in-process (no network, no meter: the
  device's own count is the ratio);
- `collab.gateway_client.GatewayCloud`: Assist / ReportUsage / GetBudget over gRPC; the gateway
  meters and returns telemetry (the dual update then uses the gateway's measured ratio).

The trainer and the edge agent depend only on this module, never on grpc directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from collab.tasks.base import Example


@dataclass(frozen=True)
class Telemetry:
    """Budget state for one (device, task), as the cloud sees it."""

    task: str
    tau: float  # the budget: share of responses that may ask for help
    mode: str  # "meter" (count, never refuse) or "enforce" (credit bucket, may refuse)
    responses: int  # lifetime responses reported
    help_requests: int  # lifetime help requests, as the cloud counted them (from its Assist traffic)
    window_ratio: float  # help/responses over the current window
    lifetime_ratio: float  # help/responses over the device's lifetime
    credit: float  # remaining credit (enforce mode); meaningless in meter mode
    report_ratio: float | None = None  # the cloud's help/responses of the report that returned this
    reported_help_requests: int = 0  # lifetime help requests the device reported
    mismatches: int = 0  # reports whose device count disagreed with the cloud's
    report_device_ratio: float | None = None  # the device's own help/responses of that report
    report_tau: float | None = None  # tau in force for that report's responses (what lambda compares to)


@dataclass(frozen=True)
class CloudReply:
    completion: str
    prompt_tokens: int
    completion_tokens: int
    telemetry: Telemetry | None = None


class CloudRefused(Exception):
    """The cloud declined the request: the budget is spent (enforce mode). Carries telemetry."""

    def __init__(self, message: str, telemetry: Telemetry | None = None):
        super().__init__(message)
        self.telemetry = telemetry


class CloudUnavailable(Exception):
    """The cloud could not be reached or failed (after retries)."""


class CloudClient(Protocol):
    def assist(
        self,
        example: Example,
        messages: list[dict[str, str]],
        *,
        idempotency_key: str,
        group_help: int = 1,
        group_size: int = 1,
        report_key: str = "",
    ) -> CloudReply:
        """The cloud completion for one prompt (one call per group with a help request).

        `group_help` help requests (collab.help) among `group_size` responses; `report_key` is the
        idempotency key of the `report_usage` that will count these responses."""
        ...

    def report_usage(self, task: str, responses: int, help_requests: int, *,
                     idempotency_key: str | None = None, offline_help: int = 0) -> Telemetry | None:
        """Report a batch (training) or served answers; returns the cloud's telemetry if any.

        `offline_help`: of `help_requests`, those whose Assist never reached the cloud."""
        ...

    def budget(self, task: str) -> Telemetry | None:
        """Current telemetry for a task, without reporting anything."""
        ...
