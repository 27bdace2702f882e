"""The fleet's load generator: questions from the built-in task datasets, sent to edge agents'
`POST /v1/answer` at a set total rate.

Open loop: request k leaves at k / rate seconds (whatever the agents' speed), to agent
k mod N, carrying test example k of the task list cycled in order (`example_id` lets the
reference cloud backend answer it). A slow fleet therefore shows up as queueing latency and as
503s (`rejected`), not as a silently lower rate. Each finished request is one `Outcome`.

Two uses: `dagrpo fleet` runs `run_load` in its own process; in docker-compose
`python -m deploy.loadgen` runs standalone, finding the agents' replicas through DNS
(`--resolve edge:8080`) and exporting `loadgen_*` metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("deploy.loadgen")


@dataclass(frozen=True)
class Agent:
    name: str  # device name, e.g. "dev-01"
    url: str  # base URL, e.g. "http://127.0.0.1:8081"


@dataclass(frozen=True)
class Outcome:
    """One request's fate. `status`: local | cloud | fallback (agent answered) | rejected (503) |
    error (anything else: connection refused, timeout, a 4xx/5xx)."""

    t: float  # seconds since the load started, when the reply arrived
    device: str
    task: str
    status: str
    requested_help: bool
    denied: bool  # fallback because the gateway refused (budget exhausted)
    latency_s: float  # client-side: queueing + local decode + cloud
    tau: float | None  # the task's tau from the gateway's telemetry, when the reply carried it


def answer_bodies(tasks: Sequence[str], per_task: int, *, max_tokens: int,
                  temperature: float = 0.0) -> list[dict]:
    """`/v1/answer` bodies: test examples of the tasks, interleaved (t1[0], t2[0], t1[1], ...)."""
    from collab.tasks import get_task

    per = [get_task(t).examples("test", per_task) for t in tasks]
    options = {"max_tokens": max_tokens, "temperature": temperature}
    return [{"question": e.question, "task": e.task, "choices": list(e.choices),
             "example_id": e.id, "options": options}
            for row in zip(*per) for e in row]


def outcome_of(device: str, task: str, t: float, latency_s: float, status_code: int,
               body: dict | None) -> Outcome:
    """Classify one HTTP reply (body: the parsed JSON of a 200, else None)."""
    if status_code == 200 and body is not None:
        telemetry = body.get("telemetry") or {}
        return Outcome(t, device, task, body["route"], body["requested_help"],
                       body.get("cloud_skipped_reason") == "budget_exhausted", latency_s,
                       telemetry.get("tau"))
    status = "rejected" if status_code == 503 else "error"
    return Outcome(t, device, task, status, False, False, latency_s, None)


async def _one(client, agent: Agent, body: dict, t0: float, timeout_s: float) -> Outcome:
    import httpx

    start = time.monotonic()
    try:
        r = await client.post(f"{agent.url}/v1/answer", json=body, timeout=timeout_s)
        code, data = r.status_code, (r.json() if r.status_code == 200 else None)
        if code not in (200, 503):
            log.warning("%s answered %d: %s", agent.name, code, r.text[:300])
    except httpx.HTTPError as exc:
        log.warning("%s: %s: %s", agent.name, type(exc).__name__, exc)
        code, data = 0, None
    end = time.monotonic()
    return outcome_of(agent.name, body["task"], end - t0, end - start, code, data)


async def run_load(agents: Sequence[Agent], bodies: Sequence[dict], rate: float,
                   duration_s: float, on_outcome: Callable[[Outcome], None],
                   stop: asyncio.Event | None = None, *, request_timeout_s: float = 300.0,
                   drain_s: float = 120.0, api_key: str = "") -> int:
    """Send for `duration_s` seconds (0: until `stop` is set), then wait up to `drain_s` for the
    requests in flight; `api_key` is the agents' client key (empty: agents without keys). Returns
    how many were sent."""
    import httpx

    if rate <= 0 or not agents or not bodies:
        raise ValueError("run_load needs rate > 0, at least one agent and one question")
    stop = stop or asyncio.Event()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(limits=limits, headers=headers) as client:
        t0, k, pending = time.monotonic(), 0, set()
        while not stop.is_set():
            due = t0 + k / rate
            if duration_s and k / rate >= duration_s:  # not due - t0: t0 + x - t0 can round below x
                break
            try:  # sleep until request k is due, waking at once on stop
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, due - time.monotonic()))
                break
            except asyncio.TimeoutError:
                pass
            agent, body = agents[k % len(agents)], bodies[k % len(bodies)]
            task = asyncio.create_task(_one(client, agent, body, t0, request_timeout_s))
            task.add_done_callback(lambda f: f.cancelled() or on_outcome(f.result()))
            pending.add(task)
            task.add_done_callback(pending.discard)
            k += 1
        if pending:
            done, late = await asyncio.wait(pending, timeout=drain_s)
            for task in late:  # still running after the drain: give up on them, loudly
                task.cancel()
            if late:
                log.warning("%d requests still running after %.0f s of drain were cancelled",
                            len(late), drain_s)
    return k


def resolve_agents(host_port: str) -> list[Agent]:
    """Every address DNS gives for `host:port` (docker-compose replicas of one service)."""
    host, _, port = host_port.rpartition(":")
    infos = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)
    ips = sorted({info[4][0] for info in infos})
    return [Agent(f"{host}-{ip}", f"http://{ip}:{port}") for ip in ips]


# -- standalone (docker-compose) ---------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m deploy.loadgen", description=__doc__.split("\n\n")[0])
    p.add_argument("--agent", action="append", default=[], metavar="URL",
                   help="an edge agent's base URL (repeatable)")
    p.add_argument("--resolve", metavar="HOST:PORT",
                   help="also every address DNS gives for HOST (docker-compose replicas)")
    p.add_argument("--rate", type=float, default=1.0, help="requests per second, whole fleet")
    p.add_argument("--duration", type=float, default=0.0, help="seconds (0: until SIGTERM)")
    p.add_argument("--tasks", default="math,science", help="comma-separated task names")
    p.add_argument("--per-task", type=int, default=500, help="test examples per task to cycle")
    p.add_argument("--max-tokens", type=int, default=256, help="local token cap per answer")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--metrics-port", type=int, default=-1, help="serve loadgen_* metrics (-1: off)")
    p.add_argument("--api-key-file", type=Path, help="file holding the agents' client key (dagrpo edge add-key)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import signal

    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = _parse(argv)
    agents = [Agent(f"agent-{i}", url.rstrip("/")) for i, url in enumerate(args.agent)]
    if args.resolve:
        agents += resolve_agents(args.resolve)
    if not agents:
        raise SystemExit("no agents: give --agent URL or --resolve HOST:PORT")
    bodies = answer_bodies(args.tasks.split(","), args.per_task, max_tokens=args.max_tokens,
                           temperature=args.temperature)
    api_key = args.api_key_file.read_text().strip() if args.api_key_file else ""
    record = _metrics_recorder(args.metrics_port) if args.metrics_port >= 0 else (lambda o: None)
    log.info("sending %.2f req/s to %d agents: %s", args.rate, len(agents),
             ", ".join(a.url for a in agents))

    async def go() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run_load(agents, bodies, args.rate, args.duration, record, stop, api_key=api_key)

    sent = asyncio.run(go())
    log.info("sent %d requests", sent)
    return 0


def _metrics_recorder(port: int) -> Callable[[Outcome], None]:
    from prometheus_client import Counter, Histogram, start_http_server

    requests = Counter("loadgen_requests_total", "Requests by task and status "
                       "(local, cloud, fallback, rejected, error)", ["task", "status"])
    latency = Histogram("loadgen_latency_seconds", "Client-side /v1/answer latency", ["status"],
                        buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300))
    start_http_server(port, "0.0.0.0")

    def record(o: Outcome) -> None:
        requests.labels(o.task, o.status).inc()
        latency.labels(o.status).observe(o.latency_s)

    return record


if __name__ == "__main__":
    raise SystemExit(main())
