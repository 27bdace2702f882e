"""`GatewayCloud`: the device side of the gateway (a `collab.cloud.CloudClient` over gRPC).

Used by the trainer (cloud queries through Assist, the dual update from the gateway's measured
ratio) and by the edge agent. Every call has a deadline; UNAVAILABLE / DEADLINE_EXCEEDED are
retried (`retries` times, exponential backoff) with the *same* idempotency key, so a retry is
metered once; then `CloudUnavailable`. A budget refusal (RESOURCE_EXHAUSTED carrying the
telemetry trailer) becomes `CloudRefused`; the gateway's per-device rate limit (RESOURCE_EXHAUSTED
carrying a retry-after trailer) is retried like weather, waiting at least that long, then
`CloudUnavailable`; gRPC's own RESOURCE_EXHAUSTED (a message over the size cap) stays a
`grpc.RpcError`. Other errors (bad input, bad key) raise `grpc.RpcError` unchanged:
they are bugs or misconfiguration, not weather. No redis, no torch here.

`assist_stream` (AssistStream) retries the same way until the first message arrives; a stream
that breaks after that is `CloudUnavailable` (the part already yielded cannot be taken back).

Both clients speak TLS (mutual TLS with a client certificate) when given a `ClientTLS`, and
refuse plaintext to a non-loopback gateway unless `insecure=True` (`collab.channel`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import grpc

from collab.channel import ClientTLS, open_channel
from collab.cloud import CloudRefused, CloudReply, CloudUnavailable, Telemetry
from collab.tasks.base import Example
from collab.v1 import gateway_pb2 as pb
from collab.v1 import gateway_pb2_grpc as pb_grpc

TELEMETRY_TRAILER = "collab-telemetry-bin"  # a budget refusal (RESOURCE_EXHAUSTED) carries the Telemetry here
RETRY_AFTER_TRAILER = "collab-retry-after-s"  # a per-device rate limit (RESOURCE_EXHAUSTED): seconds to wait
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
MODE_NAMES = {pb.MODE_METER: "meter", pb.MODE_ENFORCE: "enforce"}


def to_telemetry(t: pb.Telemetry) -> Telemetry:
    return Telemetry(
        task=t.task, tau=t.tau, mode=MODE_NAMES.get(t.mode, "unspecified"), responses=t.responses,
        help_requests=t.help_requests, window_ratio=t.window_ratio, lifetime_ratio=t.lifetime_ratio,
        credit=t.credit, report_ratio=t.report_ratio if t.HasField("report_ratio") else None,
        reported_help_requests=t.reported_help_requests, mismatches=t.mismatches,
        report_device_ratio=t.report_device_ratio if t.HasField("report_device_ratio") else None,
        report_tau=t.report_tau if t.HasField("report_tau") else None)


class GatewayCloud:
    def __init__(self, address: str, api_key: str, *, timeout_s: float = 30.0, retries: int = 3,
                 backoff_s: float = 0.1, key_prefix: str = "", tls: ClientTLS | None = None,
                 insecure: bool = False):
        """`key_prefix` goes in front of every idempotency key (Assist, its report_key, ReportUsage):
        the trainer passes its run id, so two runs of one device key never replay each other's
        `train/<step>/...` keys, and a resumed run replays its own."""
        self.address, self.timeout_s, self.retries, self.backoff_s = address, timeout_s, retries, backoff_s
        self.key_prefix = key_prefix
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._channel = open_channel(address, tls, insecure)
        self.stub = pb_grpc.CloudGatewayStub(self._channel)

    def assist(self, example: Example, messages: list[dict[str, str]], *, idempotency_key: str,
               group_help: int = 1, group_size: int = 1, report_key: str = "") -> CloudReply:
        req = self._assist_request(example, messages, idempotency_key, group_help, group_size, report_key)
        return _reply(self._call(self.stub.Assist, req))

    def assist_stream(self, example: Example, messages: list[dict[str, str]], *, idempotency_key: str,
                      group_help: int = 1, group_size: int = 1,
                      report_key: str = "") -> Iterator[str | CloudReply]:
        """Assist, streamed: the completion's text deltas, then the whole `CloudReply`.

        Closing the iterator early cancels the call (the gateway then stores no completion)."""
        req = self._assist_request(example, messages, idempotency_key, group_help, group_size, report_key)
        for attempt in range(self.retries + 1):
            call = self.stub.AssistStream(req, timeout=self.timeout_s, metadata=self._metadata)
            started = False
            try:
                for chunk in call:
                    started = True
                    if chunk.HasField("done"):
                        yield _reply(chunk.done)
                        return
                    yield chunk.delta
                raise CloudUnavailable(f"gateway {self.address}: AssistStream ended without its last message")
            except grpc.RpcError as exc:
                if started:
                    raise CloudUnavailable(f"gateway {self.address}: AssistStream broke: "
                                           f"{exc.code().name}: {exc.details()}") from None
                wait = self._raise_unless_retryable(exc, attempt)
            finally:
                call.cancel()
            time.sleep(max(self.backoff_s * 2**attempt, wait))

    def _assist_request(self, example: Example, messages: list[dict[str, str]], idempotency_key: str,
                        group_help: int, group_size: int, report_key: str) -> pb.AssistRequest:
        return pb.AssistRequest(
            task=example.task, example_id=example.id,
            messages=[pb.ChatMessage(role=m["role"], content=m["content"]) for m in messages],
            idempotency_key=self.key_prefix + idempotency_key, group_help=group_help, group_size=group_size,
            report_key=self.key_prefix + report_key if report_key else "")

    def report_usage(self, task: str, responses: int, help_requests: int, *,
                     idempotency_key: str | None = None, offline_help: int = 0) -> Telemetry:
        """Meter a batch; `report_ratio` of the result is the gateway's help/responses of this
        report (its Assist calls named `idempotency_key` as their report_key)."""
        key = self.key_prefix + idempotency_key if idempotency_key else uuid.uuid4().hex
        req = pb.ReportUsageRequest(task=task, responses=responses, help_requests=help_requests,
                                    idempotency_key=key, offline_help=offline_help)
        return to_telemetry(self._call(self.stub.ReportUsage, req).telemetry)

    def budget(self, task: str) -> Telemetry:
        return to_telemetry(self._call(self.stub.GetBudget, pb.GetBudgetRequest(task=task)).telemetry)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GatewayCloud:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request):
        """One RPC with deadline and bounded retries; the request (and its key) is reused as is."""
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout_s, metadata=self._metadata)
            except grpc.RpcError as exc:
                wait = self._raise_unless_retryable(exc, attempt)
                time.sleep(max(self.backoff_s * 2**attempt, wait))
        raise AssertionError("unreachable")

    def _raise_unless_retryable(self, exc: grpc.RpcError, attempt: int) -> float:
        """A refusal -> CloudRefused; weather or a rate limit -> the least seconds to wait before
        the retry, or, on the last attempt, CloudUnavailable; anything else re-raised as is."""
        code = exc.code()
        telemetry = _trailer_telemetry(exc)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and telemetry is not None:
            raise CloudRefused(exc.details(), telemetry) from None
        wait = _trailer_retry_after(exc) if code == grpc.StatusCode.RESOURCE_EXHAUSTED else None
        if code not in RETRYABLE and wait is None:
            raise exc
        if attempt == self.retries:
            raise CloudUnavailable(f"gateway {self.address}: {code.name} after {attempt + 1} "
                                   f"attempts: {exc.details()}") from None
        return wait or 0.0


def _reply(r: pb.AssistResponse) -> CloudReply:
    return CloudReply(r.completion, r.prompt_tokens, r.completion_tokens, to_telemetry(r.telemetry))


def _trailer_retry_after(exc: grpc.RpcError) -> float | None:
    for key, value in exc.trailing_metadata() or ():
        if key == RETRY_AFTER_TRAILER:
            return float(value)
    return None


def _trailer_telemetry(exc: grpc.RpcError) -> Telemetry | None:
    for key, value in exc.trailing_metadata() or ():
        if key == TELEMETRY_TRAILER:
            return to_telemetry(pb.Telemetry.FromString(value))
    return None


class AdminClient:
    """The admin RPCs (`dagrpo gateway set-tau | budgets | reset`)."""

    def __init__(self, address: str, admin_key: str, *, timeout_s: float = 10.0,
                 tls: ClientTLS | None = None, insecure: bool = False):
        self._metadata = (("authorization", f"Bearer {admin_key}"),)
        self._channel = open_channel(address, tls, insecure)
        self.stub = pb_grpc.GatewayAdminStub(self._channel)
        self.timeout_s = timeout_s

    def set_tau(self, task: str, schedule: list[tuple[int, float]], mode: str = "", burst: float = 0.0,
                window_responses: int = 0) -> pb.TaskPolicy:
        modes = {"": pb.MODE_UNSPECIFIED, "meter": pb.MODE_METER, "enforce": pb.MODE_ENFORCE}
        req = pb.SetTauRequest(task=task, schedule=[pb.TauStep(from_responses=s, tau=t) for s, t in schedule],
                               mode=modes[mode], burst=burst, window_responses=window_responses)
        return self.stub.SetTau(req, timeout=self.timeout_s, metadata=self._metadata).policy

    def budgets(self, device: str = "", task: str = "") -> pb.ListBudgetsResponse:
        return self.stub.ListBudgets(pb.ListBudgetsRequest(device=device, task=task), timeout=self.timeout_s,
                                     metadata=self._metadata)

    def reset(self, device: str, task: str = "") -> int:
        return self.stub.ResetDevice(pb.ResetDeviceRequest(device=device, task=task), timeout=self.timeout_s,
                                     metadata=self._metadata).reset

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
