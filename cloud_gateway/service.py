"""gRPC servicers: authenticate, convert wire <-> domain, map domain errors to status codes.

Every handler goes through `_rpc`, the one place where exceptions become status codes, so no
input can crash the server: unknown exceptions are logged and answered INTERNAL. `_rpc` also
applies the per-device RPC limits (`limiter.py`) right after authentication. A failing store or
cloud model is logged here in full and answered with a generic UNAVAILABLE: its address, its
credentials in a URL, and its own error text never reach a device.
"""

from __future__ import annotations

import functools
import logging
import time

import grpc

from collab import budget as b
from collab.v1 import gateway_pb2 as pb
from collab.v1 import gateway_pb2_grpc as pb_grpc
from cloud_gateway.auth import KeyRing, Principal
from cloud_gateway.backends.base import BackendInputError, BackendUnavailable
from cloud_gateway.gateway import Gateway, InvalidArgument, PermissionDenied, Refused
from cloud_gateway.limiter import DeviceLimiter, Throttled
from collab.gateway_client import RETRY_AFTER_TRAILER, TELEMETRY_TRAILER
from cloud_gateway.store.base import KeyReused, Snapshot, StoreUnavailable, UnknownTask

log = logging.getLogger("cloud_gateway")
MODES = {"meter": pb.MODE_METER, "enforce": pb.MODE_ENFORCE}
MODE_NAMES = {v: k for k, v in MODES.items()}


class Unauthenticated(Exception):
    pass


def telemetry(s: Snapshot) -> pb.Telemetry:
    c = s.counters
    t = pb.Telemetry(
        device=s.device, task=s.task, tau=s.tau_ppm / b.PPM, mode=MODES[s.mode], responses=c.responses,
        help_requests=c.help_requests, cloud_calls=c.cloud_calls, denials=c.denials, tokens=c.tokens,
        window_ratio=b.window_ratio(c), lifetime_ratio=b.lifetime_ratio(c), credit=c.credit_ppm / b.PPM,
        burst=s.burst_ppm / b.PPM, window_responses=c.win_responses, reported_help_requests=c.reported_help,
        mismatches=c.mismatches, flagged_reports=c.flagged, excess_responses=c.excess, throttled=c.throttled)
    if s.report is not None:
        responses, counted, reported, tau_before = s.report
        t.report_ratio = b.ratio(counted, responses)
        t.report_device_ratio = b.ratio(reported, responses)
        t.report_tau = tau_before / b.PPM
    return t


def policy_pb(task: str, p: b.Policy) -> pb.TaskPolicy:
    return pb.TaskPolicy(task=task, schedule=[pb.TauStep(from_responses=s, tau=t / b.PPM) for s, t in p.schedule],
                         mode=MODES[p.mode], burst=p.burst_ppm / b.PPM, window_responses=p.window)


def authenticate(keys: KeyRing, context: grpc.aio.ServicerContext) -> Principal:
    md = dict(context.invocation_metadata() or ())
    auth = md.get("authorization", "")
    if not auth:
        raise Unauthenticated("missing API key: send metadata 'authorization: Bearer <key>'")
    scheme, _, key = auth.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise Unauthenticated("malformed authorization metadata: expected 'Bearer <key>'")
    who = keys.identify(key.strip())
    if who is None:
        raise Unauthenticated("unknown API key")
    return who


def _rpc(method):
    """Authenticate, time, and map every domain error to its status code."""

    @functools.wraps(method)
    async def handler(self, request, context):
        start = time.perf_counter()
        try:
            who = authenticate(self.keys, context)
            with self.limiter.admit(who.name, who.admin):
                return await method(self, who, request, context)
        except Unauthenticated as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except PermissionDenied as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except (InvalidArgument, BackendInputError, KeyReused) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except UnknownTask as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"unknown task {str(exc)!r}: an admin creates it with SetTau")
        except Refused as exc:
            context.set_trailing_metadata(((TELEMETRY_TRAILER, telemetry(exc.snapshot).SerializeToString()),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except Throttled as exc:
            self.gateway.metrics.throttled_rpcs.labels(method.__name__).inc()
            context.set_trailing_metadata(((RETRY_AFTER_TRAILER, f"{exc.retry_after_s:.3f}"),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except BackendUnavailable as exc:
            log.warning("%s: cloud model unavailable: %s", method.__name__, exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "cloud model unavailable: retry with the same key")
        except StoreUnavailable as exc:
            log.warning("%s: store unavailable: %s", method.__name__, exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "budget store unavailable: retry with the same key")
        except grpc.aio.AbortError:
            raise
        except Exception:  # noqa: BLE001 -- the one catch-all: log it, keep serving
            log.exception("internal error in %s", method.__name__)
            if method.__name__ == "Assist":
                self.gateway.metrics.assists.labels(request.task, "error").inc()
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method.__name__} (see gateway log)")
        finally:
            self.gateway.metrics.latency.labels(method.__name__).observe(time.perf_counter() - start)

    return handler


class _Base:
    def __init__(self, gateway: Gateway, keys: KeyRing, limiter: DeviceLimiter):
        self.gateway, self.keys, self.limiter = gateway, keys, limiter


class CloudGatewayServicer(_Base, pb_grpc.CloudGatewayServicer):
    @_rpc
    async def Assist(self, who, req: pb.AssistRequest, context) -> pb.AssistResponse:
        remaining = context.time_remaining()
        s, done = await self.gateway.assist(
            who, req.device, req.task, req.example_id, [(m.role, m.content) for m in req.messages],
            req.idempotency_key, req.group_help, req.group_size,
            timeout_s=remaining if remaining is not None else 600.0, report_key=req.report_key)
        return pb.AssistResponse(completion=done.completion, prompt_tokens=done.prompt_tokens,
                                 completion_tokens=done.completion_tokens, telemetry=telemetry(s),
                                 backend=done.backend, replayed=s.replayed)

    @_rpc
    async def AssistStream(self, who, req: pb.AssistRequest, context) -> None:
        """Writes the deltas as they come (a coroutine, not a generator, so `_rpc` maps its errors)."""
        remaining = context.time_remaining()
        async for part in self.gateway.assist_stream(
                who, req.device, req.task, req.example_id, [(m.role, m.content) for m in req.messages],
                req.idempotency_key, req.group_help, req.group_size,
                timeout_s=remaining if remaining is not None else 600.0, report_key=req.report_key):
            if isinstance(part, str):
                await context.write(pb.AssistChunk(delta=part))
                continue
            s, done = part
            await context.write(pb.AssistChunk(done=pb.AssistResponse(
                completion=done.completion, prompt_tokens=done.prompt_tokens,
                completion_tokens=done.completion_tokens, telemetry=telemetry(s), backend=done.backend,
                replayed=s.replayed)))

    @_rpc
    async def ReportUsage(self, who, req: pb.ReportUsageRequest, context) -> pb.ReportUsageResponse:
        s = await self.gateway.report(who, req.device, req.task, req.responses, req.help_requests,
                                      req.idempotency_key, req.offline_help)
        return pb.ReportUsageResponse(telemetry=telemetry(s), replayed=s.replayed)

    @_rpc
    async def GetBudget(self, who, req: pb.GetBudgetRequest, context) -> pb.GetBudgetResponse:
        return pb.GetBudgetResponse(telemetry=telemetry(await self.gateway.get_budget(who, req.device, req.task)))


class GatewayAdminServicer(_Base, pb_grpc.GatewayAdminServicer):
    @_rpc
    async def SetTau(self, who, req: pb.SetTauRequest, context) -> pb.SetTauResponse:
        if req.mode not in (pb.MODE_UNSPECIFIED, *MODES.values()):
            raise InvalidArgument(f"mode: unknown value {req.mode}")
        policy = await self.gateway.set_tau(
            who, req.task, [(s.from_responses, s.tau) for s in req.schedule], MODE_NAMES.get(req.mode, ""),
            req.burst, req.window_responses)
        return pb.SetTauResponse(policy=policy_pb(req.task, policy))

    @_rpc
    async def ListBudgets(self, who, req: pb.ListBudgetsRequest, context) -> pb.ListBudgetsResponse:
        snaps, policies = await self.gateway.budgets(who, req.device, req.task)
        return pb.ListBudgetsResponse(budgets=[telemetry(s) for s in snaps],
                                      policies=[policy_pb(t, p) for t, p in sorted(policies.items())])

    @_rpc
    async def ResetDevice(self, who, req: pb.ResetDeviceRequest, context) -> pb.ResetDeviceResponse:
        return pb.ResetDeviceResponse(reset=await self.gateway.reset(who, req.device, req.task))
