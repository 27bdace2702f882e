"""`dagrpo fleet`: the docker-compose topology as local processes on one machine.

The run, top to bottom:
1. Keys: a fresh keys file in the run directory with one key per device (`dev-01`..`dev-NN`)
   and an admin key (the keys themselves are only in memory and in the children's environment).
   With `--tls`: a CA, the gateway's certificate and one client certificate per device and for
   the admin in RUN_DIR/certs (`dagrpo gateway make-certs`); every connection is mutual TLS.
   A child gets only an allow-list of this process's environment (`child_env`): never the
   operator's GATEWAY_ADMIN_KEY, cloud API keys or tokens, only its own key.
2. Gateway: `dagrpo gateway serve` on free loopback ports, on Redis when `--redis-url` is given,
   else on its embedded SQLite store in the run directory; wait for gRPC health SERVING.
3. Budgets: through the admin RPCs, set tau/mode/burst/window of every fleet task and reset the
   fleet's devices (so a reused Redis starts from zero and the fleet's counts are the gateway's).
   `--help-knob` starts the agents with their help knob on (EDGE_HELP_KNOB, docs/edge.md).
4. Agents: N `dagrpo edge serve` on distinct free ports, each with its own device key, usage
   flushed every `flush_interval_s`; wait for every `/health`; with `--adapter`, load each
   agent's own copy of it through `POST /v1/adapter`. Write `prometheus-targets.json`
   (Prometheus file_sd format) naming every `/metrics` endpoint.
5. Load: `deploy.loadgen.run_load` in this process, with a live rich table per device; then the
   requests in flight finish (drain). Each `--tau-at` change is applied at its time through the
   admin SetTau, as `dagrpo gateway set-tau TASK TAU` would (mode, burst and window kept).
6. Settle: wait until every agent's outbox is empty (all usage metered), read the gateway's own
   per-device totals, keep everything up `linger_s` more (so scrapers see the final counters).
7. Stop: SIGTERM to every child's process group (each child is a session leader), SIGKILL after
   `grace_s`; then write summary.json, answers.jsonl and fleet.png.
Ctrl-C or SIGTERM during the load ends the load early and goes through 5-7; a second one skips
to 7. Every child is stopped on every exit path.

Departures from the docker-compose topology: no Redis process is started (the embedded SQLite
store replaces it unless `--redis-url` names one), the cloud is the gateway's reference backend
by default (`--backend openai` uses `GATEWAY_OPENAI_*` from the environment), and the load
generator is a coroutine of this process, not a container.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deploy.loadgen import Agent, Outcome, answer_bodies, run_load
from deploy.summary import counts_agree, device_rows, summarize, tau_change_rows, tau_segments
from deploy.tau_changes import TauChange, tau_timeline

log = logging.getLogger("deploy.fleet")
HOST = "127.0.0.1"


class FleetConfig(BaseModel):
    """Everything `dagrpo fleet` needs; invalid values fail at construction naming the field."""

    model_config = ConfigDict(extra="forbid")

    devices: int = Field(3, ge=1, le=64, description="edge agents to start")
    duration_s: float = Field(60.0, gt=0, description="seconds of load")
    rate: float = Field(1.0, gt=0, description="requests per second, whole fleet")
    tasks: list[str] = Field(["math", "science"], min_length=1, description="task names to ask")
    tau: float = Field(0.3, ge=0, le=1, description="tau of every fleet task")
    tau_changes: list[TauChange] = Field(default_factory=list, description="tau changes during the load")
    mode: Literal["meter", "enforce"] = Field("enforce", description="gateway budget mode")
    burst: float = Field(2.0, ge=1, description="credit cap, in help requests")
    window: int = Field(256, ge=1, description="responses per gateway ratio window")
    max_tokens: int = Field(128, ge=1, description="local token cap per answer")
    temperature: float = Field(0.0, ge=0, le=2, description="local sampling temperature")
    per_task: int = Field(500, ge=1, description="test examples per task to cycle through")
    redis_url: str = Field("", description="gateway store; empty: embedded SQLite")
    backend: Literal["reference", "openai"] = Field("reference", description="cloud backend")
    cloud_latency_s: float = Field(0.0, ge=0, description="reference backend: added latency")
    adapter: str = Field("", description="LoRA adapter every agent loads (GGUF, peft or run dir)")
    threads: int = Field(1, ge=1, description="llama.cpp threads per agent")
    help_knob: bool = Field(False, description="agents hold tau with the help knob (EDGE_HELP_KNOB)")
    help_bias_file: str = Field("", description="the agents' knob calibration (dagrpo calibrate)")
    queue_size: int = Field(16, ge=1, description="requests an agent queues before 503")
    flush_interval_s: float = Field(1.0, gt=0, description="agents' usage flush period")
    out_dir: Path = Field(Path("runs/fleet"), description="where summary and logs go")
    linger_s: float = Field(0.0, ge=0, description="seconds to stay up after settling")
    drain_s: float = Field(120.0, ge=0, description="most seconds to wait for in-flight requests")
    grace_s: float = Field(15.0, ge=0, description="SIGTERM -> SIGKILL delay per child")
    live: bool = Field(True, description="live table (else a line every 10 s)")
    tls: bool = Field(False, description="mutual TLS between agents, admin and gateway (certs in out_dir/certs)")

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, v: list[str]) -> list[str]:
        from collab.tasks import get_task

        for name in v:
            try:
                get_task(name)
            except KeyError as exc:  # pydantic reports ValueErrors, naming the field
                raise ValueError(exc.args[0]) from None
        return v

    @field_validator("adapter", "help_bias_file")
    @classmethod
    def _path_exists(cls, v: str, info) -> str:
        if v and not Path(v).exists():
            raise ValueError(f"{info.field_name.replace('_', ' ')} {v!r} does not exist")
        return v

    @model_validator(mode="after")
    def _changes_fit(self) -> "FleetConfig":
        for c in self.tau_changes:
            if c.task is not None and c.task not in self.tasks:
                raise ValueError(f"tau change at {c.at_s:g} s names task {c.task!r}, not one of the "
                                 f"fleet's tasks {self.tasks}")
            if c.at_s >= self.duration_s:
                raise ValueError(f"tau change at {c.at_s:g} s comes after the load ends "
                                 f"({self.duration_s:g} s)")
        if self.help_bias_file and not self.help_knob:
            raise ValueError("help_bias_file calibrates the help knob: give help_knob too")
        return self

    def timeline(self) -> dict[str, list[tuple[float, float]]]:
        return tau_timeline(self.tau, self.tau_changes, self.tasks)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path

    def tail(self, n: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""


@dataclass
class Fleet:
    """What one run started and saw."""

    cfg: FleetConfig
    children: list[Child] = field(default_factory=list)  # in start order; stopped newest first
    agents: list[Agent] = field(default_factory=list)  # healthy agents only
    gateway_address: str = ""  # gRPC host:port
    gateway_metrics_port: int = 0
    certs: Path | None = None  # RUN_DIR/certs with --tls
    outcomes: list[Outcome] = field(default_factory=list)  # appended on the event loop thread
    tau_applied: list[dict] = field(default_factory=list)  # each --tau-at as the gateway took it


# -- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# What a child inherits from this process: the interpreter's and the C runtime's basics, and its
# own settings namespace (GATEWAY_* for the gateway, EDGE_* for an agent) minus the secrets that
# are not its own. Everything else (tokens, cloud keys, the admin key) stays here.
BASE_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
                      "PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "OMP_NUM_THREADS", "HF_HUB_OFFLINE",
                      "TRANSFORMERS_OFFLINE", "SSL_CERT_FILE", "SSL_CERT_DIR"})
NOT_INHERITED = frozenset({"GATEWAY_ADMIN_KEY", "GATEWAY_ADDRESS", "EDGE_API_KEY"})


def child_env(environ: dict[str, str], prefix: str, own: dict[str, str]) -> dict[str, str]:
    """The environment of a child whose settings use `prefix`: the allow-list, then `own`."""
    kept = {k: v for k, v in environ.items()
            if (k in BASE_ENV or k.startswith("LC_") or k.startswith(prefix)) and k not in NOT_INHERITED}
    return {**kept, "PYTHONUNBUFFERED": "1", **own}


def spawn(fleet: Fleet, name: str, argv: list[str], env: dict[str, str]) -> Child:
    """Start `python -m dagrpo.cli ARGV` as the leader of a new session (its own process group),
    with `env` as its whole environment."""
    log_path = fleet.cfg.out_dir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dagrpo.cli", *argv], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    child = Child(name, proc, log_path)
    fleet.children.append(child)
    return child


def stop_children(children: list[Child], grace_s: float) -> None:
    """SIGTERM every child's process group, newest first; SIGKILL what outlives `grace_s`."""
    for c in reversed(children):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(c.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for c in reversed(children):
        try:
            c.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s ignored SIGTERM for %g s: SIGKILL", c.name, grace_s)
        with contextlib.suppress(ProcessLookupError):  # stragglers of the group, if any
            os.killpg(c.proc.pid, signal.SIGKILL)
        c.proc.wait()


def wait_until(child: Child, ready, what: str, timeout_s: float = 120.0) -> None:
    """Poll `ready()` until true; fail with the child's log tail if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited ({child.proc.returncode}) before {what}:\n"
                               f"{child.tail()}")
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{child.name}: no {what} after {timeout_s:.0f} s:\n{child.tail()}")


# -- the gateway ----------------------------------------------------------------------------------


ADMIN = "fleet-admin"


def make_keys(path: Path, devices: list[str]) -> tuple[dict[str, str], str]:
    """A fresh keys file: ({device: key}, admin key)."""
    from cloud_gateway.auth import add_key

    path.unlink(missing_ok=True)
    keys = {d: add_key(path, d) for d in devices}
    return keys, add_key(path, ADMIN, admin=True)


def tls_server_args(certs: Path | None) -> list[str]:
    if certs is None:
        return []
    return ["--tls-cert", str(certs / "server.crt"), "--tls-key", str(certs / "server.key"),
            "--tls-client-ca", str(certs / "ca.crt")]


def client_tls(certs: Path | None, name: str):
    """The `ClientTLS` of client `name` (mutual TLS), or None without --tls."""
    from collab.channel import ClientTLS

    if certs is None:
        return None
    return ClientTLS(str(certs / "ca.crt"), str(certs / "clients" / f"{name}.crt"),
                     str(certs / "clients" / f"{name}.key"))


def agent_tls_env(certs: Path | None, device: str) -> dict[str, str]:
    tls = client_tls(certs, device)
    if tls is None:
        return {}
    return {"EDGE_GATEWAY_CA": tls.ca, "EDGE_GATEWAY_CERT": tls.cert, "EDGE_GATEWAY_KEY": tls.key}


def start_gateway(fleet: Fleet, keys_file: Path) -> Child:
    cfg = fleet.cfg
    port, fleet.gateway_metrics_port = free_port(), free_port()
    fleet.gateway_address = f"{HOST}:{port}"
    store = (["--redis-url", cfg.redis_url] if cfg.redis_url
             else ["--sqlite-path", str(cfg.out_dir / "gateway.db")])
    child = spawn(fleet, "gateway", [
        "gateway", "serve", "--host", HOST, "--port", str(port),
        "--metrics-port", str(fleet.gateway_metrics_port), "--keys-file", str(keys_file),
        "--backend", cfg.backend, "--log-level", "WARNING", *store,
        *tls_server_args(fleet.certs),
    ], child_env(os.environ, "GATEWAY_", {"GATEWAY_REFERENCE_LATENCY_S": str(cfg.cloud_latency_s)}))

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from collab.channel import open_channel

    with open_channel(fleet.gateway_address, client_tls(fleet.certs, ADMIN)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        wait_until(child, lambda: stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                   == health_pb2.HealthCheckResponse.SERVING, "gRPC health SERVING", 60)
    return child


def configure_budgets(admin, cfg: FleetConfig, devices: list[str]) -> None:
    for task in cfg.tasks:
        admin.set_tau(task, [(0, cfg.tau)], cfg.mode, cfg.burst, cfg.window)
    for d in devices:
        admin.reset(d)


COUNTERS = ("responses", "help_requests", "cloud_calls", "denials", "tokens")


def gateway_totals(admin, devices: list[str], tasks: list[str]) -> dict[str, dict]:
    """The gateway store's own counters for the fleet's devices: summed per task, and per device
    (summed over the fleet's tasks)."""
    per_task = {t: dict.fromkeys(COUNTERS, 0) for t in tasks}
    per_device = {d: dict.fromkeys(COUNTERS, 0) for d in devices}
    for b in admin.budgets().budgets:
        if b.device in per_device and b.task in per_task:
            for n in COUNTERS:
                per_task[b.task][n] += getattr(b, n)
                per_device[b.device][n] += getattr(b, n)
    return {"per_task": per_task, "per_device": per_device}


# -- the agents -----------------------------------------------------------------------------------


def start_agents(fleet: Fleet, keys: dict[str, str]) -> None:
    cfg = fleet.cfg
    started = []
    (cfg.out_dir / "agents").mkdir(exist_ok=True)
    for device, key in keys.items():
        port = free_port()
        env = child_env(os.environ, "EDGE_", {"EDGE_API_KEY": key, "EDGE_FLUSH_INTERVAL_S": str(cfg.flush_interval_s),
                                              **agent_tls_env(fleet.certs, device), **knob_env(cfg)})
        child = spawn(fleet, device, [
            "edge", "serve", "--host", HOST, "--port", str(port),
            "--gateway", fleet.gateway_address, "--threads", str(cfg.threads),
            "--queue-size", str(cfg.queue_size),
            "--outbox-path", str(cfg.out_dir / "agents" / f"{device}.sqlite"),
        ], env)
        started.append((child, Agent(device, f"http://{HOST}:{port}")))
    for child, agent in started:  # they load their models in parallel
        wait_until(child, lambda a=agent: httpx.get(f"{a.url}/health", timeout=2).status_code
                   == 200, "GET /health 200", 180)
        fleet.agents.append(agent)
    if cfg.adapter:
        load_adapters(fleet)


def knob_env(cfg: FleetConfig) -> dict[str, str]:
    """The agents' help-knob settings: off, or on with the fleet's starting tau until the
    gateway's telemetry says otherwise."""
    if not cfg.help_knob:
        return {}
    env = {"EDGE_HELP_KNOB": "1", "EDGE_KNOB_DEFAULT_TAU": str(cfg.tau)}
    if cfg.help_bias_file:
        env["EDGE_HELP_BIAS_FILE"] = str(Path(cfg.help_bias_file).resolve())
    return env


def load_adapters(fleet: Fleet) -> None:
    """POST /v1/adapter on every agent (its own copy of `--adapter`).

    Through the hot-swap API rather than EDGE_ADAPTER_PATH: an agent reports the training run's
    lambda (`edge_lambda`) only for adapters loaded this way.
    """
    for agent in fleet.agents:
        r = httpx.post(f"{agent.url}/v1/adapter", timeout=300,
                       json={"path": device_adapter(fleet.cfg, agent.name)})
        if r.status_code != 200:
            raise RuntimeError(f"{agent.name}: loading adapter {fleet.cfg.adapter!r} failed: "
                               f"{r.status_code} {r.text[:500]}")


def device_adapter(cfg: FleetConfig, device: str) -> str:
    """The adapter an agent loads. A run or peft dir is copied per device: each agent exports
    its GGUF beside the adapter at start, and N agents must not write one file at once."""
    src = Path(cfg.adapter)
    if src.is_file():
        return str(src)
    dst = cfg.out_dir / "agents" / f"{device}-adapter"
    shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.gguf"))
    return str(dst)


def prometheus_targets(fleet: Fleet) -> list[dict]:
    """Prometheus file_sd entries: the gateway's and every agent's /metrics."""
    gateway = {"targets": [f"{HOST}:{fleet.gateway_metrics_port}"], "labels": {"job": "gateway"}}
    agents = [{"targets": [a.url.removeprefix("http://")], "labels": {"job": "edge", "device": a.name}}
              for a in fleet.agents]
    return [gateway, *agents]


def usage_pending(agents: list[Agent]) -> int:
    """Usage rows the agents have not delivered yet (from their /health)."""
    total = 0
    for a in agents:
        try:
            total += httpx.get(f"{a.url}/health", timeout=5).json()["usage_pending"]
        except httpx.HTTPError as exc:
            raise RuntimeError(f"{a.name} stopped answering /health: {exc}") from None
    return total


def settle(fleet: Fleet, timeout_s: float = 60.0) -> None:
    """Wait until every agent delivered its usage reports to the gateway."""
    deadline = time.monotonic() + timeout_s
    while (pending := usage_pending(fleet.agents)) and time.monotonic() < deadline:
        time.sleep(0.25)
    if pending:
        raise RuntimeError(f"{pending} usage reports still undelivered after {timeout_s:.0f} s")


# -- load and the live table ----------------------------------------------------------------------


def render_table(fleet: Fleet, elapsed_s: float):
    from rich.table import Table

    cfg = fleet.cfg
    devices = [a.name for a in fleet.agents]
    tau = tau_now(cfg.timeline(), elapsed_s)
    table = Table(title=f"dagrpo fleet: {len(devices)} devices, {elapsed_s:.0f} s elapsed of "
                  f"{cfg.duration_s:g} s load, {cfg.rate:g} req/s, tau {_fmt(tau, 'g')} ({cfg.mode})")
    for col in ("device", "answers", "help", "ratio", "vs tau", "denials", "cloud",
                "503/err", "p50 s", "p99 s"):
        table.add_column(col, justify="left" if col == "device" else "right")
    rows = device_rows(fleet.outcomes, devices)
    rows["all"] = summarize(fleet.outcomes, devices, {}, 1.0)["total"]
    for name, r in rows.items():
        ratio = r["ratio"]
        table.add_row(
            name, str(r["answers"]), str(r["help_requests"]), _fmt(ratio, ".2f"),
            _fmt(None if ratio is None or tau is None else ratio - tau, "+.2f"), str(r["denials"]),
            str(r["cloud"]), f"{r['rejected']}/{r['errors']}",
            _fmt(r["latency_p50_s"], ".2f"), _fmt(r["latency_p99_s"], ".2f"),
            style="bold" if name == "all" else None)
    return table


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def tau_now(timeline: dict[str, list[tuple[float, float]]], t: float) -> float | None:
    """The tau in force at t seconds if every task has the same, else None."""
    now = {max((s for s in steps if s[0] <= t), default=steps[0])[1] for steps in timeline.values()}
    return now.pop() if len(now) == 1 else None


async def apply_tau_changes(fleet: Fleet, admin, start: float) -> None:
    """Each --tau-at change at its time after `start` (monotonic), through the admin SetTau with
    mode, burst and window kept (what `dagrpo gateway set-tau TASK TAU` sends)."""
    cfg = fleet.cfg
    for c in sorted(cfg.tau_changes, key=lambda c: c.at_s):
        await asyncio.sleep(max(0.0, start + c.at_s - time.monotonic()))
        for task in cfg.tasks if c.task is None else [c.task]:
            await asyncio.to_thread(admin.set_tau, task, [(0, c.tau)])
            fleet.tau_applied.append({"at_s": c.at_s, "applied_s": time.monotonic() - start,
                                      "task": task, "tau": c.tau})
            log.info("tau of %s set to %g at %.1f s", task, c.tau, time.monotonic() - start)


async def load_phase(fleet: Fleet, admin, early_stop: threading.Event | None = None) -> tuple[float, bool]:
    """Run the load with the live view and the tau changes; SIGINT/SIGTERM end it early (also one
    that came before the loop's handlers were in place: `early_stop`). Returns the seconds from the
    first request to the last reply (sending + drain), and whether it was interrupted."""
    from rich.console import Console
    from rich.live import Live

    cfg = fleet.cfg
    bodies = answer_bodies(cfg.tasks, cfg.per_task, max_tokens=cfg.max_tokens,
                           temperature=cfg.temperature)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if early_stop is not None and early_stop.is_set():
        stop.set()
    start = time.monotonic()
    console = Console() if sys.stdout.isatty() else Console(width=120)  # logs: no 80-col wrap
    load = asyncio.create_task(run_load(fleet.agents, bodies, cfg.rate, cfg.duration_s,
                                        fleet.outcomes.append, stop, drain_s=cfg.drain_s))
    changes = asyncio.create_task(apply_tau_changes(fleet, admin, start))
    try:
        if cfg.live and console.is_terminal:
            with Live(render_table(fleet, 0), console=console, refresh_per_second=2) as live:
                while not load.done():
                    await asyncio.wait({load}, timeout=0.5)
                    live.update(render_table(fleet, time.monotonic() - start))
        else:
            while not load.done():
                await asyncio.wait({load}, timeout=10)
                rows = summarize(fleet.outcomes, [], {}, 1.0)["total"]
                console.print(f"{time.monotonic() - start:6.0f} s: {rows['answers']} answers, "
                              f"{rows['help_requests']} help, {rows['denials']} denials")
        await load
        if changes.done():
            changes.result()  # a failed SetTau fails the run
    finally:
        changes.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    elapsed = time.monotonic() - start
    console.print(render_table(fleet, elapsed))
    return elapsed, stop.is_set()


# -- the run --------------------------------------------------------------------------------------


def _raise_interrupt(*_):
    raise KeyboardInterrupt


def run_fleet(cfg: FleetConfig) -> dict:
    """Start, load, settle, stop; returns the summary (also written to out_dir/summary.json)."""
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(cfg)
    devices = [f"dev-{i:02d}" for i in range(1, cfg.devices + 1)]
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM outside the load = Ctrl-C
    admin = None
    try:
        keys, admin_key = make_keys(cfg.out_dir / "gateway-keys.toml", devices)
        if cfg.tls:
            from cloud_gateway.certs import make_certs

            fleet.certs = cfg.out_dir / "certs"
            make_certs(fleet.certs, [], [*devices, ADMIN])
        start_gateway(fleet, cfg.out_dir / "gateway-keys.toml")
        from collab.gateway_client import AdminClient

        admin = AdminClient(fleet.gateway_address, admin_key, tls=client_tls(fleet.certs, ADMIN))
        configure_budgets(admin, cfg, devices)
        start_agents(fleet, keys)
        # From here a Ctrl-C ends the load (not the run): it still settles and writes the summary.
        early_stop = threading.Event()
        previous_int = signal.signal(signal.SIGINT, lambda *_: early_stop.set())
        _write_json(cfg.out_dir / "prometheus-targets.json", prometheus_targets(fleet))
        started_at = time.time()
        try:
            wall_s, interrupted = asyncio.run(load_phase(fleet, admin, early_stop))
        finally:
            signal.signal(signal.SIGINT, previous_int)
        settle(fleet)
        settled_at = time.time()
        totals = gateway_totals(admin, devices, cfg.tasks)
        time.sleep(cfg.linger_s)
    finally:
        if admin is not None:
            admin.close()
        stop_children(fleet.children, cfg.grace_s)
        signal.signal(signal.SIGTERM, previous)
    summary = build_summary(fleet, wall_s, totals)
    summary.update(started_at=started_at, settled_at=settled_at, interrupted=interrupted)
    write_outputs(fleet, summary)
    return summary


def build_summary(fleet: Fleet, wall_s: float, totals: dict[str, dict]) -> dict:
    """summarize() over the load's wall time (answers_per_s counts the drain too: what the fleet
    really served), plus the gateway's totals and whether the two agree."""
    cfg = fleet.cfg
    timeline = applied_timeline(fleet)
    # a whole-run ratio has no single tau to sit against once tau changed: see tau_segments
    taus = {t: steps[0][1] if len(steps) == 1 else None for t, steps in timeline.items()}
    s = summarize(fleet.outcomes, [a.name for a in fleet.agents], taus, wall_s)
    end_s = max([wall_s] + [o.t for o in fleet.outcomes])
    s["tau_segments"] = {t: tau_segments(fleet.outcomes, t, steps, end_s) for t, steps in timeline.items()}
    s["tau_changes"] = tau_change_rows(s["tau_segments"])
    s["tau_applied"] = fleet.tau_applied
    s["gateway"] = totals
    s["agrees_with_gateway"] = (counts_agree(s["per_task"], totals["per_task"])
                                and counts_agree(s["per_device"], totals["per_device"]))
    s["config"] = json.loads(cfg.model_dump_json())
    s["endpoints"] = {"gateway": fleet.gateway_address,
                      "gateway_metrics": f"{HOST}:{fleet.gateway_metrics_port}",
                      "agents": {a.name: a.url for a in fleet.agents}}
    return s


def applied_timeline(fleet: Fleet) -> dict[str, list[tuple[float, float]]]:
    """The tau in force per task over the load: the changes the gateway took (an interrupted load
    may end before some), at their planned times."""
    taken = [TauChange(at_s=a["at_s"], tau=a["tau"], task=a["task"]) for a in fleet.tau_applied]
    return tau_timeline(fleet.cfg.tau, taken, fleet.cfg.tasks)


def write_outputs(fleet: Fleet, summary: dict) -> None:
    out = fleet.cfg.out_dir
    _write_json(out / "summary.json", summary)
    with open(out / "answers.jsonl", "w") as f:
        for o in fleet.outcomes:
            f.write(json.dumps(asdict(o)) + "\n")
    from deploy.plots import plot_fleet

    plot_fleet(fleet.outcomes, applied_timeline(fleet), out / "fleet.png", summary["load_wall_s"])


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)  # Prometheus' file_sd must never read half a file
