"""The gateway's own share of a metered call: `Gateway.report` / `assist` on real Redis, no gRPC.

    python -m bench.gateway_inproc [--calls 3000] [--concurrency 64] [--cluster N] [--profile FILE]

Starts redis-server (AOF, appendfsync always; `--cluster N`: N cluster-enabled ones joined into a
Redis Cluster, the store on a redis+cluster:// URL), then calls the domain layer (validation, the store
client, budget.lua, metrics, the reference backend, the Telemetry message) from `--concurrency`
asyncio tasks in this process and prints calls/s and this process's CPU per call. With
`gateway_load --floor` (what grpc.aio costs per call) this splits a call's CPU into gRPC and
gateway; `--profile` writes a cProfile of the assist run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.gateway_load import free_port, start_redis, wait_for


async def run(url: str, op: str, calls: int, concurrency: int) -> tuple[float, float]:
    from cloud_gateway.auth import Principal
    from cloud_gateway.backends.reference import ReferenceBackend
    from cloud_gateway.gateway import Gateway
    from cloud_gateway.metrics import GatewayMetrics
    from cloud_gateway.service import telemetry
    from cloud_gateway.store.redis_store import RedisStore
    from collab import budget as b

    store = RedisStore(url, b.Limits(10**9, 10**6, 10**9, 10**6))  # one bench device: limits out of the way
    await store.seed_policies({"math": b.Policy(((0, 300_000),), "meter", 4 * b.PPM, 256)})
    gw, who, tag = Gateway(store, ReferenceBackend(), GatewayMetrics()), Principal("bench", False), time.monotonic_ns()

    async def worker(i: int) -> None:
        for j in range(calls // concurrency):
            key = f"{op}{tag}-{i}-{j}"
            if op == "report":
                s = await gw.report(who, "", "math", 8, 0, key)
            else:
                s, _ = await gw.assist(who, "", "math", f"math/train/{j % 500}", [("user", "q")], key, 1, 1, 30.0)
            telemetry(s).SerializeToString()

    await asyncio.gather(*[worker(i) for i in range(concurrency)])  # warm-up: connection, script, caches
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*[worker(i) for i in range(concurrency)])
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await store.close()
    n = calls // concurrency * concurrency
    return n / wall, cpu / n * 1e6


def start_cluster(workdir: Path, nodes: int) -> tuple[list, str]:
    """`nodes` primaries (AOF, appendfsync always), joined by `redis-cli --cluster create`."""
    import subprocess

    procs, ports = [], []
    for i in range(nodes):
        port = free_port()
        while port + 10000 > 65535:  # the cluster bus listens on port + 10000
            port = free_port()
        (workdir / f"node{i}").mkdir()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir / f"node{i}"),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--cluster-enabled", "yes",
             "--cluster-config-file", "nodes.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ports.append(port)
    for port in ports:
        wait_for(lambda p=port: subprocess.run(["redis-cli", "-p", str(p), "ping"], capture_output=True,
                                               text=True).stdout.strip() == "PONG", "redis-server")
    subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas",
                    "0", "--cluster-yes"], check=True, capture_output=True)
    wait_for(lambda: all("cluster_state:ok" in subprocess.run(["redis-cli", "-p", str(p), "cluster", "info"],
                                                              capture_output=True, text=True).stdout
                         for p in ports), "redis cluster")
    return procs, f"redis+cluster://127.0.0.1:{ports[0]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--cluster", type=int, default=0, help="a Redis Cluster of this many primaries (0: one Redis)")
    ap.add_argument("--profile", type=Path, help="write a cProfile of the assist run here")
    args = ap.parse_args()
    print(f"# gateway in-process (no gRPC), redis appendfsync=always, "
          f"{f'cluster of {args.cluster} primaries' if args.cluster else 'one redis'}, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="gwinproc-") as tmp:
        if args.cluster:
            procs, url = start_cluster(Path(tmp), args.cluster)
        else:
            proc, port = start_redis(Path(tmp), "always")
            procs, url = [proc], f"redis://127.0.0.1:{port}/0"
        try:
            for op in ("report", "assist"):
                rate, us = asyncio.run(run(url, op, args.calls, args.concurrency))
                print(f"{op:<7} {rate:>7.0f} calls/s {us:>6.0f} us CPU/call (gateway + store client, this process)")
            if args.profile:
                cProfile.runctx("asyncio.run(run(url, 'assist', args.calls, args.concurrency))", globals(),
                                {"url": url, "args": args, "run": run, "asyncio": asyncio}, str(args.profile))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
