"""Gateway throughput and latency, and the raw Redis ceiling on the same machine, in one run.

    python bench/gateway_load.py [--seconds 4] [--stores redis,sqlite] [--fsync always]

Starts redis-server (AOF, `--appendfsync` as given) and `dagrpo gateway serve` (reference backend,
no added latency) as subprocesses on loopback, then for concurrency 1, 16 and 64 drives
ReportUsage and Assist calls (each a metered call with a fresh idempotency key) from asyncio
clients for `--seconds` each, printing calls/s and p50/p99 latency. Finally `redis-benchmark`
measures the same Lua script (budget.lua, `report`, fresh idempotency keys via __rand_int__) and
plain INCR at 64 connections: the physical limit. The client runs on the same cores as the
gateway and Redis, so the gateway numbers include the load generator's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from collab.v1 import gateway_pb2 as pb
from collab.v1 import gateway_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parent.parent
LUA = REPO / "cloud_gateway" / "store" / "budget.lua"
CONCURRENCY = (1, 16, 64)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 -- not up yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


def start_redis(workdir: Path, fsync: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                             "--save", "", "--appendonly", "yes", "--appendfsync", fsync],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                                    text=True).stdout.strip() == "PONG", "redis-server")
    return proc, port


def start_gateway(workdir: Path, store_args: list[str]) -> tuple[subprocess.Popen, str, str]:
    from cloud_gateway.auth import add_key

    keys = workdir / f"keys-{time.monotonic_ns()}.toml"
    device_key = add_key(keys, "bench")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dagrpo.cli", "gateway", "serve", "--port", str(port),
                             "--metrics-port", "-1", "--keys-file", str(keys), "--log-level", "WARNING",
                             *store_args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"

    def healthy() -> bool:
        with grpc.insecure_channel(address) as ch:
            return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1

    wait_for(healthy, "gateway")
    return proc, address, device_key


async def drive(address: str, key: str, op: str, concurrency: int, seconds: float) -> tuple[float, float, float]:
    """(calls/s, p50 ms, p99 ms) of `concurrency` clients calling `op` back to back."""
    md = (("authorization", f"Bearer {key}"),)
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    run = f"{op}{time.monotonic_ns()}"

    async def client(i: int, stub) -> None:
        n = 0
        while time.perf_counter() < stop_at:
            ikey = f"{run}-{i}-{n}"
            t0 = time.perf_counter()
            if op == "report":
                await stub.ReportUsage(pb.ReportUsageRequest(task="math", responses=8, help_requests=2,
                                                             idempotency_key=ikey), metadata=md, timeout=30)
            else:
                await stub.Assist(pb.AssistRequest(task="math", example_id=f"math/train/{n % 500}", idempotency_key=ikey,
                                                   messages=[pb.ChatMessage(role="user", content="q")]),
                                  metadata=md, timeout=30)
            latencies.append(time.perf_counter() - t0)
            n += 1

    channels = [grpc.aio.insecure_channel(address) for _ in range(min(concurrency, 8))]
    start = time.perf_counter()
    await asyncio.gather(*[client(i, pb_grpc.CloudGatewayStub(channels[i % len(channels)]))
                           for i in range(concurrency)])
    elapsed = time.perf_counter() - start
    for ch in channels:
        await ch.close()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3  # noqa: E731
    return len(latencies) / elapsed, pick(0.50), pick(0.99)


def redis_ceiling(port: int, requests: int) -> dict[str, float]:
    """redis-benchmark at 64 connections: the Lua script (report, fresh keys) and INCR, requests/s."""
    sha = hashlib.sha1(LUA.read_bytes()).hexdigest()
    subprocess.run(["redis-cli", "-p", str(port), "SCRIPT", "LOAD", LUA.read_text()], check=True, capture_output=True)
    runs = {
        "lua": ["EVALSHA", sha, "3", "gw:p:math", "gw:c:bench-rb:math", "gw:i:bench-rb:__rand_int__",
                "report", "math", "86400", "", "8", "2"],
        "incr": ["INCR", "bench:counter"],
    }
    out = {}
    for name, cmd in runs.items():
        res = subprocess.run(["redis-benchmark", "-p", str(port), "-c", "64", "-n", str(requests), "-r", "1000000000",
                              "-q", *cmd], capture_output=True, text=True, check=True)
        m = re.search(r"([\d.]+) requests per second", res.stdout.replace("\r", "\n"))
        out[name] = float(m.group(1)) if m else float("nan")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="duration of each measurement")
    ap.add_argument("--stores", default="redis,sqlite", help="comma list of redis, sqlite")
    ap.add_argument("--fsync", default="always", choices=("always", "everysec", "no"), help="Redis appendfsync")
    ap.add_argument("--redis-requests", type=int, default=100_000, help="redis-benchmark requests per command")
    args = ap.parse_args()
    for tool in ("redis-server", "redis-benchmark", "redis-cli"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: run scripts/install-system-deps.sh")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"# gateway load, reference backend, {os.cpu_count()} CPUs, redis appendfsync={args.fsync}, "
          f"{args.seconds:g} s per point")
    with tempfile.TemporaryDirectory(prefix="gwbench-") as tmp:
        work = Path(tmp)
        redis_proc, redis_port = start_redis(work, args.fsync)
        best = {}
        try:
            print(f"{'store':<7} {'rpc':<7} {'conc':>4} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
            for store in args.stores.split(","):
                store_args = (["--redis-url", f"redis://127.0.0.1:{redis_port}/0"] if store == "redis"
                              else ["--sqlite-path", str(work / "bench.db")])
                gw, address, key = start_gateway(work, store_args)
                try:
                    for op in ("report", "assist"):
                        for c in CONCURRENCY:
                            rate, p50, p99 = asyncio.run(drive(address, key, op, c, args.seconds))
                            best[store, op] = max(best.get((store, op), 0.0), rate)
                            print(f"{store:<7} {op:<7} {c:>4} {rate:>9.0f} {p50:>8.2f} {p99:>8.2f}", flush=True)
                finally:
                    gw.terminate()
                    gw.wait(30)
            ceiling = redis_ceiling(redis_port, args.redis_requests)
        finally:
            redis_proc.terminate()
            redis_proc.wait(10)
    print(f"redis-benchmark -c 64: budget.lua report {ceiling['lua']:.0f} req/s, INCR {ceiling['incr']:.0f} req/s")
    for (store, op), rate in best.items():
        print(f"note: {store} {op}: best {rate:.0f} metered calls/s = {rate / ceiling['lua']:.1%} of the raw "
              f"Lua ceiling ({ceiling['lua']:.0f}/s), {rate / ceiling['incr']:.1%} of INCR ({ceiling['incr']:.0f}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
