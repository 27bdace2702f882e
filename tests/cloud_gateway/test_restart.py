"""Kill the gateway (SIGKILL) or Redis (SIGKILL, AOF appendfsync=always) in the middle of a load.

Clients retry UNAVAILABLE with the same idempotency key until acknowledged. After the restart,
the counts equal the distinct calls exactly: no acknowledged usage is lost, none is doubled.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from collab.v1 import gateway_pb2 as pb
from collab.v1 import gateway_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("wide_limits")]
CLIENTS = 16
REPORTS_PER_CLIENT = 50
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def md(key):
    return (("authorization", f"Bearer {key}"),)


async def load_with_crash(address: str, device_key: str, crash, crash_after: int):
    """Run the load; call `crash()` (blocking: kill + restart) once `crash_after` calls are acked.

    Returns (total responses acknowledged, responses acknowledged before the crash)."""
    acked = {"n": 0, "responses": 0, "before_crash": None}
    crashed = asyncio.Event()

    async def client(i):
        async with grpc.aio.insecure_channel(address) as ch:
            stub = pb_grpc.CloudGatewayStub(ch)
            for j in range(REPORTS_PER_CLIENT):
                req = pb.ReportUsageRequest(task="math", responses=1 + (i + j) % 5, help_requests=(i + j) % 2,
                                            idempotency_key=f"c{i}-{j}")
                while True:
                    try:
                        await stub.ReportUsage(req, metadata=md(device_key), timeout=5)
                        break
                    except grpc.aio.AioRpcError as exc:
                        assert exc.code() in RETRYABLE, exc
                        await asyncio.sleep(0.05)
                acked["n"] += 1
                acked["responses"] += req.responses
                if acked["n"] == crash_after:
                    crashed.set()

    async def crasher():
        await crashed.wait()
        acked["before_crash"] = acked["responses"]
        await asyncio.to_thread(crash)

    await asyncio.gather(crasher(), *[client(i) for i in range(CLIENTS)])
    return acked["responses"], acked["before_crash"]


async def responses_of(address, admin_key):
    async with grpc.aio.insecure_channel(address) as ch:
        reply = await pb_grpc.GatewayAdminStub(ch).ListBudgets(
            pb.ListBudgetsRequest(device="d1", task="math"), metadata=md(admin_key), timeout=10)
        return reply.budgets[0].responses


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_gateway_killed_mid_load_loses_no_acknowledged_usage(store, request, tmp_path, gateway_process, keys):
    args = (["--sqlite-path", str(tmp_path / "gw.db")] if store == "sqlite"
            else ["--redis-url", request.getfixturevalue("redis_server").url])
    gw = gateway_process(*args)

    def crash():
        gw.kill()
        gw.start()

    total, before = asyncio.run(load_with_crash(gw.address, keys.d1, crash, CLIENTS * REPORTS_PER_CLIENT // 3))
    assert before and 0 < before < total
    assert asyncio.run(responses_of(gw.address, keys.admin)) == total
    assert gw.terminate() == 0  # and SIGTERM is a clean shutdown


def test_redis_killed_mid_load_with_aof_loses_nothing_acknowledged(redis_server, gateway_process, keys):
    assert redis_server.fsync == "always"
    gw = gateway_process("--redis-url", redis_server.url)
    total, before = asyncio.run(load_with_crash(gw.address, keys.d1, redis_server.restart,
                                                CLIENTS * REPORTS_PER_CLIENT // 2))
    assert before and 0 < before < total
    assert asyncio.run(responses_of(gw.address, keys.admin)) == total
