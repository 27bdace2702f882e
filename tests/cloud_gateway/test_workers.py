"""`dagrpo gateway serve --workers N`: N processes on one port (SO_REUSEPORT) and one Redis.

Exact counts under load through both workers are in test_load.py (`redis-2-workers`); here: the
settings refuse what cannot work, both workers serve, a stray gateway cannot join the port by
accident, SIGTERM stops them all cleanly, and a worker that dies takes the set down loudly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from pydantic import ValidationError

from cloud_gateway.config import load_settings
from collab.v1 import gateway_pb2 as pb
from collab.v1 import gateway_pb2_grpc as pb_grpc


OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def test_workers_need_redis_and_a_fixed_port():
    with pytest.raises(ValidationError, match="workers > 1 needs redis_url"):
        load_settings(workers=2, port=50051)
    with pytest.raises(ValidationError, match="workers > 1 needs a fixed port"):
        load_settings(workers=2, port=0, redis_url="redis://127.0.0.1:6379/0")
    assert load_settings(workers=2, port=50051, redis_url="redis://127.0.0.1:6379/0").workers == 2


def worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.integration
@pytest.mark.usefixtures("wide_limits")  # 64 calls in flight from one device key
def test_two_workers_share_the_port_and_stop_cleanly(redis_server, gateway_process, keys):
    gw = gateway_process("--redis-url", redis_server.url, "--workers", "2")
    pids = worker_pids(gw.proc.pid)
    assert len(pids) == 2
    before = {p: cpu_ticks(p) for p in pids}

    async def load():
        # 16 connections (grpc shares one between channels unless told not to); the kernel spreads them
        channels = [grpc.aio.insecure_channel(gw.address, options=OWN_CONNECTION) for _ in range(16)]
        try:
            stubs = [pb_grpc.CloudGatewayStub(ch) for ch in channels]
            md = (("authorization", f"Bearer {keys.d1}"),)
            await asyncio.gather(*[stubs[i % 16].ReportUsage(
                pb.ReportUsageRequest(task="math", responses=1, idempotency_key=f"w{i}"), metadata=md, timeout=30)
                for i in range(400)])
            t = await stubs[0].GetBudget(pb.GetBudgetRequest(task="math"), metadata=md, timeout=30)
            return t.telemetry.responses
        finally:
            for ch in channels:
                await ch.close()

    assert asyncio.run(load()) == 400
    assert all(cpu_ticks(p) > before[p] for p in pids), "a worker served nothing"
    # without --workers a gateway does not set SO_REUSEPORT: it cannot join the port by accident
    stray = subprocess.run([sys.executable, "-m", "dagrpo.cli", "gateway", "serve", "--port", str(gw.port),
                            "--metrics-port", "-1", "--keys-file", str(keys.path), "--redis-url", redis_server.url],
                           capture_output=True, text=True, timeout=60)
    assert stray.returncode != 0 and "Address already in use" in stray.stderr, stray.stderr[-2000:]
    assert gw.terminate() == 0
    assert not any(Path(f"/proc/{p}").exists() for p in pids)


@pytest.mark.integration
def test_a_dead_worker_stops_the_set_loudly(redis_server, gateway_process):
    gw = gateway_process("--redis-url", redis_server.url, "--workers", "2")
    first, second = worker_pids(gw.proc.pid)
    os.kill(first, signal.SIGKILL)
    assert gw.proc.wait(30) != 0  # the parent stops the other worker and fails: a supervisor restarts the set
    assert not Path(f"/proc/{second}").exists()
    assert "exited with -9: stopping the others" in gw.log.read_text()
