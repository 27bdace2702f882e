"""One load-generator process of `gateway_load`: asyncio clients calling a gateway back to back.

    python -m bench.gateway_loadgen --address HOST:PORT[,HOST:PORT...] --key KEY --op report|assist
        --concurrency N --seconds S --tag T

Opens its channels, prints `ready`, reads the start time (a `time.time()` value) from stdin, runs
`--concurrency` clients from then for `--seconds` (each call a metered call with a fresh
idempotency key, the clients spread round-robin over the addresses), then prints one JSON line
`{"calls": n, "latencies": [seconds, ...], "cpu_s": this process's CPU over the run}`. Run in
its own process so that the gateway's CPU time is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import grpc

from collab.v1 import gateway_pb2 as pb
from collab.v1 import gateway_pb2_grpc as pb_grpc


def request(op: str, key: str, n: int):
    if op == "report":
        return pb.ReportUsageRequest(task="math", responses=8, help_requests=0, idempotency_key=key)
    return pb.AssistRequest(task="math", example_id=f"math/train/{n % 500}", idempotency_key=key,
                            messages=[pb.ChatMessage(role="user", content="q")])


async def run(addresses: list[str], key: str, op: str, concurrency: int, seconds: float, tag: str) -> dict:
    md = (("authorization", f"Bearer {key}"),)
    # each channel its own connection (grpc shares one between same-target channels by default),
    # like devices of a fleet; SO_REUSEPORT workers are spread by connection
    own = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(addresses[i % len(addresses)], options=own)
                for i in range(max(len(addresses), min(concurrency, 4)))]
    for ch in channels:
        await asyncio.wait_for(ch.channel_ready(), 30)
    stubs = [pb_grpc.CloudGatewayStub(ch) for ch in channels]
    print("ready", flush=True)
    start_at = float(await asyncio.to_thread(sys.stdin.readline))
    await asyncio.sleep(max(0.0, start_at - time.time()))
    stop_at = time.perf_counter() + seconds
    latencies: list[float] = []
    cpu0 = time.process_time()

    async def client(i: int) -> None:
        stub = stubs[i % len(stubs)]
        call = stub.ReportUsage if op == "report" else stub.Assist
        n = 0
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            await call(request(op, f"{tag}-{i}-{n}", n), metadata=md, timeout=30)
            latencies.append(time.perf_counter() - t0)
            n += 1

    await asyncio.gather(*[client(i) for i in range(concurrency)])
    cpu_s = time.process_time() - cpu0
    for ch in channels:
        await ch.close()
    return {"calls": len(latencies), "latencies": latencies, "cpu_s": cpu_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--address", required=True, help="comma list of gateway host:port")
    ap.add_argument("--key", required=True, help="device API key")
    ap.add_argument("--op", choices=("report", "assist"), required=True)
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--tag", required=True, help="idempotency-key prefix, unique per run")
    a = ap.parse_args()
    out = asyncio.run(run(a.address.split(","), a.key, a.op, a.concurrency, a.seconds, a.tag))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
