"""`dagrpo gateway serve`: the gRPC server, its store, backend, health, reflection and metrics.

Start-up: load keys, open the store (Redis when `redis_url` is set, else SQLite), seed the task
policies (built-in tasks with `default_budget`, plus `tasks` from the config; an admin's live
change is never overwritten), start gRPC + health + reflection, start `/metrics`.
SIGHUP (and any change of the keys file, polled every `keys_poll_s`) reloads the keys: revoking a
key needs no restart. Shutdown (SIGTERM/SIGINT or `stop()`): health goes NOT_SERVING, new calls are refused, in-flight
calls get `grace_s` to finish, then the store and the backend close.
`workers = N > 1`: N such processes bind the same port with SO_REUSEPORT (the kernel spreads
connections over them) and share the Redis store, the only state; the parent forwards SIGTERM
and SIGINT, waits for them, and stops them all if one dies (fail loudly: a supervisor restarts).

Relation to the paper (DA-GRPO, section 3 and Algorithm 1), numbered departures:
1. The paper's cloud "decides" tau; here the gateway owns it per task (SetTau, config), as a
   constant or a schedule keyed on the device's responses (the paper's D.3 schedules are per
   training phase/step; a step is batch*G responses, so the same schedules are expressible).
2. The paper's constraint E[c] <= tau holds in expectation and is enforced only through lambda.
   `meter` mode is exactly that (training). `enforce` mode (serving) adds a hard credit bucket,
   which the paper does not have: at most tau*N + burst cloud calls over N responses.
3. J_c_hat in the dual update is the gateway's help/responses of the reported batch
   (`report_ratio`): help measured from the Assist calls that named the report, responses from
   the device (only it can count them); the paper counts both on the device. The device's own
   count is cross-checked, a disagreement counted (docs/gateway.md, "Who counts what"). A help
   request is eq. 14's (collab.help) everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from collab.v1 import gateway_pb2 as pb
from collab.v1 import gateway_pb2_grpc as pb_grpc
from cloud_gateway.auth import KeyRing
from cloud_gateway.backends import build_backend
from cloud_gateway.config import GatewaySettings
from cloud_gateway.gateway import Gateway
from cloud_gateway.limiter import DeviceLimiter
from cloud_gateway.metrics import GatewayMetrics
from cloud_gateway.service import CloudGatewayServicer, GatewayAdminServicer

log = logging.getLogger("cloud_gateway")
SERVICES = (pb.DESCRIPTOR.services_by_name["CloudGateway"].full_name,
            pb.DESCRIPTOR.services_by_name["GatewayAdmin"].full_name)
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class WorkerFailed(Exception):
    """A worker of `serve_workers` exited on its own (the others were stopped)."""


def build_store(settings: GatewaySettings):
    if settings.redis_url:
        from cloud_gateway.store.redis_store import RedisStore

        return RedisStore(settings.redis_url, settings.limits.store_limits(), settings.idempotency_ttl_s)
    from cloud_gateway.store.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path, settings.limits.store_limits(), settings.idempotency_ttl_s)


def initial_policies(settings: GatewaySettings) -> dict:
    from collab.tasks import list_tasks

    policies = {t: settings.default_budget.policy() for t in list_tasks()}
    policies.update({t: cfg.policy() for t, cfg in settings.tasks.items()})
    return policies


def server_credentials(settings: GatewaySettings) -> grpc.ServerCredentials | None:
    """TLS credentials from the PEM files; with `tls_client_ca`, client certificates are required."""
    s = settings
    if s.tls_cert is None:
        return None
    ca = s.tls_client_ca.read_bytes() if s.tls_client_ca else None
    return grpc.ssl_server_credentials([(s.tls_key.read_bytes(), s.tls_cert.read_bytes())],
                                       root_certificates=ca, require_client_auth=ca is not None)


def transport(settings: GatewaySettings) -> str:
    if settings.tls_cert is None:
        return "plaintext"
    return "mutual TLS" if settings.tls_client_ca else "TLS"


def bind(server: grpc.aio.Server, settings: GatewaySettings) -> int:
    """Add the listening port (TLS when configured; plaintext off loopback was refused at load)."""
    address = f"{settings.host}:{settings.port}"
    creds = server_credentials(settings)
    return server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)


class GatewayServer:
    """One gateway process: `await start()` returns the bound port; `await stop()` drains."""

    def __init__(self, settings: GatewaySettings, reuse_port: bool = False):
        self.settings = settings
        self.reuse_port = reuse_port  # only workers share a port: a stray second gateway must fail to bind
        self.keys = KeyRing.load(settings.keys_file)
        self.metrics = GatewayMetrics()
        self._keys_watch: asyncio.Task | None = None
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._metrics_http = None

    async def start(self) -> int:
        s = self.settings
        self.store = build_store(s)
        await self.store.seed_policies(initial_policies(s))
        self.backend = build_backend(s)
        self.gateway = Gateway(self.store, self.backend, self.metrics, s.max_prompt_chars, s.max_messages,
                               s.max_example_id_chars, s.max_completion_chars)
        self.server = grpc.aio.server(options=[("grpc.max_receive_message_length", s.max_message_bytes),
                                               ("grpc.so_reuseport", int(self.reuse_port))],
                                      maximum_concurrent_rpcs=s.max_concurrent_rpcs)
        lim = s.limits
        limiter = DeviceLimiter(lim.rpc_per_s, lim.rpc_burst, lim.rpc_concurrent)
        for servicer, add in ((CloudGatewayServicer, pb_grpc.add_CloudGatewayServicer_to_server),
                              (GatewayAdminServicer, pb_grpc.add_GatewayAdminServicer_to_server)):
            add(servicer(self.gateway, self.keys, limiter), self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        self.port = bind(self.server, s)
        if self.port == 0:
            raise OSError(f"cannot bind gRPC to {s.host}:{s.port}")
        await self.server.start()
        for name in ("", *SERVICES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if s.metrics_port >= 0:
            self._metrics_http, _ = start_http_server(s.metrics_port, s.host, registry=self.metrics.registry)
            self.metrics_port = self._metrics_http.server_port
        self._keys_watch = asyncio.create_task(self._watch_keys())
        log.info("gateway on %s:%d (%s, store %s, backend %s, metrics port %s)", s.host, self.port, transport(s),
                 "redis" if s.redis_url else f"sqlite {s.sqlite_path}", self.backend.name, self.metrics_port)
        return self.port

    def reload_keys(self, only_if_changed: bool = False) -> None:
        """Read the keys file again (SIGHUP, or a change seen by the watcher): a revoked key stops
        working at once. A broken file is logged and the keys in force stay."""
        path = self.settings.keys_file
        try:
            if self.keys.reload(only_if_changed):
                log.info("keys reloaded from %s: %d device and %d admin keys", path, *self.keys.names())
        except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
            log.error("keys file %s not reloaded, the keys in force stay: %s", path, exc)

    async def _watch_keys(self) -> None:
        while True:
            await asyncio.sleep(self.settings.keys_poll_s)
            self.reload_keys(only_if_changed=True)

    async def stop(self, grace_s: float | None = None) -> None:
        grace = self.settings.grace_s if grace_s is None else grace_s
        self._keys_watch.cancel()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)  # refuses new calls, lets in-flight ones finish within grace
        await self.store.close()
        await self.backend.close()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()

    async def serve_forever(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_keys)
        await self.start()
        await stop.wait()
        log.info("shutting down: draining in-flight calls (grace %.1f s)", self.settings.grace_s)
        await self.stop()


def serve(settings: GatewaySettings) -> None:
    if settings.workers == 1:
        asyncio.run(GatewayServer(settings).serve_forever())
        return
    serve_workers(settings)


def serve_workers(settings: GatewaySettings) -> None:
    """`settings.workers` gateway processes on one port; returns when all have stopped."""
    ctx = multiprocessing.get_context("spawn")  # no forked grpc or event-loop state
    level = logging.getLogger().level
    procs = [ctx.Process(target=_worker, args=(settings.model_dump(), i, level), name=f"gateway-{i}")
             for i in range(settings.workers)]
    stopping = False

    def signal_all(signum, _frame) -> None:
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signum)

    def forward(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        signal_all(signum, _frame)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    signal.signal(signal.SIGHUP, signal_all)  # each worker reloads its keys
    for p in procs:
        p.start()
    log.info("gateway: %d workers on %s:%d (pids %s)", len(procs), settings.host, settings.port,
             " ".join(str(p.pid) for p in procs))
    alive = list(procs)
    while alive:
        multiprocessing.connection.wait([p.sentinel for p in alive])
        for p in [p for p in alive if not p.is_alive()]:
            alive.remove(p)
            if not stopping:
                log.error("gateway worker %s exited with %s: stopping the others", p.name, p.exitcode)
                forward(signal.SIGTERM, None)
    bad = [f"{p.name} (exit {p.exitcode})" for p in procs if p.exitcode != 0]
    if bad:
        raise WorkerFailed(f"gateway workers failed: {', '.join(bad)}")


def _worker(values: dict, index: int, log_level: int) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a SIGHUP forwarded while starting must not kill it
    logging.basicConfig(level=log_level, format=LOG_FORMAT, force=True)
    settings = GatewaySettings(**values)
    if settings.metrics_port > 0:
        settings = settings.model_copy(update={"metrics_port": settings.metrics_port + index})
    asyncio.run(GatewayServer(settings, reuse_port=True).serve_forever())


class EmbeddedGateway:
    """A gateway on a background thread, for synchronous callers (`dagrpo demo`, tests).

    with EmbeddedGateway(settings) as gw:
        client = GatewayCloud(gw.address, key)
    """

    def __init__(self, settings: GatewaySettings):
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gateway", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.server.port}"

    def __enter__(self) -> EmbeddedGateway:
        self._thread.start()
        self.server = self._run(self._make())
        self._run(self.server.start())
        return self

    def __exit__(self, *exc) -> None:
        self._run(self.server.stop(1.0))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _make(self) -> GatewayServer:
        return GatewayServer(self.settings)

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()
