"""Gateway throughput, latency and CPU per metered call, and the raw Redis ceiling, in one run.

    python -m bench.gateway_load [--seconds 3] [--stores redis,sqlite] [--fsync always]
        [--gateways 1,2] [--loadgens 2] [--profile DIR]

Starts redis-server (AOF, `--appendfsync` as given) and `dagrpo gateway serve` (reference backend,
no added latency) as subprocesses on loopback. For each point (store, gateway processes, rpc,
concurrency 1/16/64) `--loadgens` separate load-generator processes (`bench/gateway_loadgen.py`)
call ReportUsage or Assist back to back, each call a metered call with a fresh idempotency key,
for `--seconds`. Printed per point: calls/s, p50/p99 latency, the gateway processes' own CPU time
per call (utime+stime from /proc, microseconds), Redis's and the load generators' CPU per call
(how the cores were split), and the calls/s that the gateway CPU figure implies for one core of
its own. Finally `redis-benchmark -c 64` runs the same
Lua script (budget.lua, `report` and `assist` with fresh keys) and INCR: the store's ceiling on
this machine in this run. `--profile DIR` runs a single gateway under cProfile and writes one
.prof per store. The load average is printed with every point: this machine is shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
LUA = REPO / "cloud_gateway" / "store" / "budget.lua"
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 -- not up yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


def cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def start_redis(workdir: Path, fsync: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                             "--save", "", "--appendonly", "yes", "--appendfsync", fsync,
                             "--maxmemory", "1gb", "--maxmemory-policy", "noeviction"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                                    text=True).stdout.strip() == "PONG", "redis-server")
    return proc, port


# One bench device key driven by 64 clients back to back: far over the per-device limits of one
# real device (docs/security.md); lifted so that the bench measures metering, not throttling.
WIDE_LIMITS = {f"GATEWAY_LIMITS__{name}": "1000000" for name in (
    "RPC_PER_S", "RPC_BURST", "RPC_CONCURRENT", "RESPONSES_PER_S", "RESPONSES_BURST", "ASSISTS_PER_S",
    "ASSISTS_BURST")}


@dataclass
class Gateway:
    proc: subprocess.Popen
    address: str


def start_gateway(tree: Path | None, keys: Path, store_args: list[str], profile: Path | None) -> Gateway:
    """`dagrpo gateway serve` from the source tree `tree` (this checkout, or a baseline export);
    `tree=None`: the constant-reply grpc.aio server (bench/grpc_floor.py)."""
    port = free_port()
    prefix = ["-m", "cProfile", "-o", str(profile)] if profile else []
    command = (["-m", "bench.grpc_floor", "--port", str(port)] if tree is None else
               ["-m", "dagrpo.cli", "gateway", "serve", "--port", str(port), "--metrics-port", "-1",
                "--keys-file", str(keys), "--log-level", "WARNING", *store_args])
    proc = subprocess.Popen([sys.executable, *prefix, *command], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tree or REPO,
                            env={**os.environ, **WIDE_LIMITS, "PYTHONPATH": str(tree or REPO)})
    address = f"127.0.0.1:{port}"

    def healthy() -> bool:
        with grpc.insecure_channel(address) as ch:
            return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1

    wait_for(healthy, "gateway")
    return Gateway(proc, address)


def split(total: int, parts: int) -> list[int]:
    """`total` clients over at most `parts` processes, as evenly as possible: split(16, 3) == [6, 5, 5]."""
    parts = max(1, min(parts, total))
    return [total // parts + (i < total % parts) for i in range(parts)]


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def drive(gateways: list[Gateway], redis_pid: int | None, key: str, op: str, concurrency: int, seconds: float,
          loadgens: int) -> dict[str, float]:
    """One point: load generators in their own processes; the gateways' and Redis's CPU over the window."""
    tag = f"{op}{time.monotonic_ns()}"
    address = ",".join(g.address for g in gateways)
    procs = [subprocess.Popen([sys.executable, "-m", "bench.gateway_loadgen", "--address", address, "--key", key,
                               "--op", op, "--concurrency", str(n), "--seconds", str(seconds), "--tag", f"{tag}-{j}"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
             for j, n in enumerate(split(concurrency, loadgens))]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("load generator failed to start")
    start_at = time.time() + 0.5
    for p in procs:
        p.stdin.write(f"{start_at}\n")
        p.stdin.flush()
    pids = [g.proc.pid for g in gateways]
    time.sleep(max(0.0, start_at - time.time()))
    gw0, rd0 = sum(map(cpu_s, pids)), cpu_s(redis_pid) if redis_pid else 0.0
    time.sleep(seconds)
    gw1, rd1 = sum(map(cpu_s, pids)), cpu_s(redis_pid) if redis_pid else 0.0
    latencies: list[float] = []
    client_cpu = 0.0
    for p in procs:
        out, _ = p.communicate(timeout=120)
        if p.returncode:
            raise RuntimeError(f"load generator exited {p.returncode}")
        result = json.loads(out.strip().splitlines()[-1])
        latencies += result["latencies"]
        client_cpu += result["cpu_s"]
    latencies.sort()
    calls = len(latencies)
    gw_us = (gw1 - gw0) / calls * 1e6
    return {"rate": calls / seconds, "p50": percentile(latencies, 0.5) * 1e3, "p99": percentile(latencies, 0.99) * 1e3,
            "gw_us": gw_us, "redis_us": (rd1 - rd0) / calls * 1e6, "client_us": client_cpu / calls * 1e6,
            "core_rate": 1e6 / gw_us if gw_us else float("inf"),
            "load": os.getloadavg()[0]}


def redis_ceiling(port: int, requests: int) -> dict[str, float]:
    """redis-benchmark at 64 connections, requests/s: budget.lua report and assist with fresh keys, INCR,
    and report with 16 commands pipelined per connection (what the gateway's auto-pipelining can reach)."""
    sha = hashlib.sha1(LUA.read_bytes()).hexdigest()
    subprocess.run(["redis-cli", "-p", str(port), "SCRIPT", "LOAD", LUA.read_text()], check=True, capture_output=True)
    keys = ["4", "gw:{0}:p:math", "gw:{0}:c:bench-rb:math", "gw:{0}:i:bench-rb:__rand_int__",
            "gw:{0}:s:bench-rb:__rand_int__"]  # redis_store.py's layout on one Redis
    bounds = [str(int(time.time() * 1000)), "1000000000", "1000000", "1000000000", "1000000"]  # now, wide limits
    runs = {
        "lua report": ["EVALSHA", sha, *keys, "report", "math", "86400", "", *bounds, "8", "0", "0"],
        "lua assist": ["EVALSHA", sha, *keys, "assist", "math", "86400", "math/train/1", *bounds, "1", "1"],
        "incr": ["INCR", "bench:counter"],
    }
    runs["lua report -P 16"] = runs["lua report"]
    out = {}
    for name, cmd in runs.items():
        pipeline = ["-P", "16"] if name.endswith("-P 16") else []
        res = subprocess.run(["redis-benchmark", "-p", str(port), "-c", "64", "-n", str(requests), "-r", "1000000000",
                              *pipeline, "-q", *cmd], capture_output=True, text=True, check=True)
        m = re.search(r"([\d.]+) requests per second", res.stdout.replace("\r", "\n"))
        if not m:
            raise RuntimeError(f"redis-benchmark {name}: no rate in {res.stdout[-300:]!r} {res.stderr[-300:]!r}")
        out[name] = float(m.group(1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    ap.add_argument("--stores", default="redis,sqlite", help="comma list of redis, sqlite")
    ap.add_argument("--ops", default="report,assist", help="comma list of report, assist")
    ap.add_argument("--concurrency", default="1,16,64", help="comma list of client counts")
    ap.add_argument("--gateways", default="1", help="comma list of gateway process counts (redis only beyond 1)")
    ap.add_argument("--loadgens", type=int, default=2, help="load-generator processes per point")
    ap.add_argument("--fsync", default="always", choices=("always", "everysec", "no"), help="Redis appendfsync")
    ap.add_argument("--redis-requests", type=int, default=100_000, help="redis-benchmark requests per command")
    ap.add_argument("--profile", type=Path, help="run one gateway under cProfile, write DIR/<tree>-<store>.prof")
    ap.add_argument("--floor", action="store_true", help="first measure bench/grpc_floor.py (constant replies, "
                    "no auth, no store): what grpc.aio itself costs per call")
    ap.add_argument("--baseline", type=Path, help="also run the gateway from this source tree (e.g. `git archive "
                    "<commit> | tar -x -C DIR`), point by point before this checkout's")
    args = ap.parse_args()
    for tool in ("redis-server", "redis-benchmark", "redis-cli"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: run scripts/install-system-deps.sh")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from cloud_gateway.auth import add_key

    print(f"# gateway load, reference backend, {os.cpu_count()} CPUs, redis appendfsync={args.fsync}, "
          f"{args.seconds:g} s per point, {args.loadgens} load-generator processes, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, commit {git_commit()}")
    with tempfile.TemporaryDirectory(prefix="gwbench-") as tmp:
        work = Path(tmp)
        keys = work / "keys.toml"
        key = add_key(keys, "bench")
        redis_proc, redis_port = start_redis(work, args.fsync)
        best: dict[tuple[str, str, int, str], float] = {}
        try:
            trees = ([("floor", None)] if args.floor else []) + \
                    ([("base", args.baseline.resolve())] if args.baseline else []) + [("this", REPO)]
            print(f"{'tree':<5} {'store':<6} {'gws':>3} {'rpc':<6} {'conc':>4} {'calls/s':>8} {'p50 ms':>7} "
                  f"{'p99 ms':>7} "
                  f"{'gw us/call':>10} {'redis us/call':>13} {'client us/call':>14} {'calls/s/gw-core':>15} "
                  f"{'load1':>5}")
            for store in args.stores.split(","):
                store_args = (["--redis-url", f"redis://127.0.0.1:{redis_port}/0"] if store == "redis"
                              else ["--sqlite-path", str(work / "bench.db")])
                for n_gw in map(int, args.gateways.split(",")):
                    if n_gw > 1 and store != "redis":
                        continue  # SQLite is one file per gateway: no shared budget
                    for tree_name, tree in trees:
                        if tree is None and (n_gw > 1 or store != args.stores.split(",")[0]):
                            continue  # the floor has no store: once is enough
                        profile = (args.profile / f"{tree_name}-{store}.prof" if args.profile and n_gw == 1
                                   else None)
                        if profile:
                            args.profile.mkdir(parents=True, exist_ok=True)
                        gws = [start_gateway(tree, keys, store_args, profile) for _ in range(n_gw)]
                        try:
                            for op in args.ops.split(","):
                                for c in map(int, args.concurrency.split(",")):
                                    r = drive(gws, redis_proc.pid if store == "redis" else None, key, op, c,
                                              args.seconds, args.loadgens)
                                    point = (tree_name, store, n_gw, op)
                                    best[point] = max(best.get(point, 0.0), r["rate"])
                                    print(f"{tree_name:<5} {store:<6} {n_gw:>3} {op:<6} {c:>4} {r['rate']:>8.0f} "
                                          f"{r['p50']:>7.2f} {r['p99']:>7.2f} {r['gw_us']:>10.0f} "
                                          f"{r['redis_us']:>13.0f} {r['client_us']:>14.0f} {r['core_rate']:>15.0f} "
                                          f"{r['load']:>5.1f}",
                                          flush=True)
                        finally:
                            for g in gws:
                                g.proc.terminate()
                            for g in gws:
                                g.proc.wait(60)
            ceiling = redis_ceiling(redis_port, args.redis_requests)
        finally:
            redis_proc.terminate()
            redis_proc.wait(10)
    print("redis-benchmark -c 64: " + ", ".join(f"{k} {v:.0f} req/s" for k, v in ceiling.items())
          + f" (load average {os.getloadavg()[0]:.1f})")
    for (tree_name, store, n_gw, op), rate in best.items():
        lua = ceiling[f"lua {op}"]
        print(f"note: {tree_name} {store} x{n_gw} {op}: best {rate:.0f} metered calls/s = {rate / lua:.1%} of the "
              f"raw Lua {op} ceiling ({lua:.0f}/s)")
    return 0


def git_commit() -> str:
    res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return res.stdout.strip() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
