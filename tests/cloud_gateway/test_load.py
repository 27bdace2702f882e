"""64 concurrent clients against real gateway processes: SQLite, Redis, two gateways on one Redis,
`--workers 2` (two processes on one port), and two gateways on one three-primary Redis Cluster.

Thousands of Assist/ReportUsage calls, ~10% of them sent twice with the same idempotency key
(some concurrently with the original, and with two gateways the duplicate often through the other
one): the final counts equal the distinct calls exactly, and in enforce mode the allowed/refused
split equals the credit rule (collab.budget) exactly.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict

import grpc
import pytest

from collab import budget as b
from collab.v1 import gateway_pb2 as pb
from collab.v1 import gateway_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration
CLIENTS = 64
CALLS_PER_CLIENT = 36
DEVICES = ("d1", "d2")  # 32 clients share each device's counters
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def md(key):
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture(params=["sqlite", "redis", "redis-2-gateways", "redis-2-workers", "redis-cluster-2-gateways"])
def addresses(request, tmp_path, gateway_process, wide_limits) -> list[str]:
    """Where the clients connect: one gateway, or two that share one Redis or one 3-primary Redis Cluster."""
    if request.param == "sqlite":
        return [gateway_process("--sqlite-path", str(tmp_path / "load.db")).address]
    if request.param == "redis-cluster-2-gateways":
        url = request.getfixturevalue("redis_cluster").url
        return [gateway_process("--redis-url", url).address, gateway_process("--redis-url", url).address]
    url = request.getfixturevalue("redis_server").url
    if request.param == "redis-2-gateways":
        return [gateway_process("--redis-url", url).address, gateway_process("--redis-url", url).address]
    if request.param == "redis-2-workers":
        return [gateway_process("--redis-url", url, "--workers", "2").address]
    return [gateway_process("--redis-url", url).address]


async def call(stub_method, req, key):
    try:
        return await stub_method(req, metadata=md(key), timeout=30)
    except grpc.aio.AioRpcError as exc:
        return exc.code()


def test_counts_equal_distinct_calls_under_concurrency_with_duplicates(addresses, keys):
    device_keys = {"d1": keys.d1, "d2": keys.d2}
    expected = {d: Counter() for d in DEVICES}

    async def client(i, stubs):
        rng = random.Random(i)
        device = DEVICES[i % 2]
        for j in range(CALLS_PER_CLIENT):
            key = f"c{i}-{j}"
            if rng.random() < 0.5:
                r = rng.randint(0, 8)
                h = rng.randint(0, r)
                req = pb.ReportUsageRequest(task="math", responses=r, help_requests=h, idempotency_key=key)
                method, counts = "ReportUsage", {"responses": r, "reported_help": h}
            else:
                req = pb.AssistRequest(task="math", example_id=f"math/train/{j}", idempotency_key=key,
                                       messages=[pb.ChatMessage(role="user", content="q")])
                # names no report: its one help request goes straight into the gateway's count
                method, counts = "Assist", {"cloud_calls": 1, "help_requests": 1}
            dup = rng.random() < 0.1
            sends = [getattr(stubs[(i + k) % len(stubs)], method) for k in range(1 + dup)]  # a retry: another channel
            replies = await asyncio.gather(*[call(send, req, device_keys[device]) for send in sends])
            assert all(not isinstance(rep, grpc.StatusCode) for rep in replies), replies
            if dup:  # the retry got the same answer
                assert replies[0].telemetry == replies[1].telemetry
                assert sorted(rep.replayed for rep in replies) == [False, True]
            expected[device].update(counts)

    async def go():
        # 16 connections (grpc shares one between channels unless told not to): with --workers the
        # kernel spreads connections, not calls
        channels = [grpc.aio.insecure_channel(addresses[i % len(addresses)], options=OWN_CONNECTION)
                    for i in range(16)]
        try:
            stubs = [pb_grpc.CloudGatewayStub(ch) for ch in channels]
            await asyncio.gather(*[client(i, stubs) for i in range(CLIENTS)])
            admin = pb_grpc.GatewayAdminStub(channels[0])
            return await admin.ListBudgets(pb.ListBudgetsRequest(task="math"), metadata=md(keys.admin), timeout=30)
        finally:
            for ch in channels:
                await ch.close()

    budgets = asyncio.run(go()).budgets
    got = {t.device: Counter(responses=t.responses, help_requests=t.help_requests, cloud_calls=t.cloud_calls,
                             reported_help=t.reported_help_requests) for t in budgets}
    assert got == expected
    assert sum(c["cloud_calls"] for c in got.values()) > 500


def test_enforce_split_matches_the_credit_rule_exactly(addresses, keys):
    """Concurrent phases, each order-independent under the rule: spend the full bucket, earn
    (capped, monotone), spend again. Duplicates get the same decision and are not counted."""
    policy = b.Policy(((0, 250_000),), "enforce", 50 * b.PPM, 256)
    rng = random.Random(1)
    phase_spend_1 = 70
    reports = [rng.randint(1, 8) for _ in range(30)]
    phase_spend_2 = 64

    async def spend(stubs, tag, n):
        reqs = [pb.AssistRequest(task="science", example_id=f"science/train/{i}", idempotency_key=f"{tag}{i}",
                                 messages=[pb.ChatMessage(role="user", content="q")]) for i in range(n)]
        sends = reqs + [reqs[i] for i in range(0, n, 7)]  # duplicates, interleaved concurrently
        random.Random(tag).shuffle(sends)
        replies = await asyncio.gather(*[call(stubs[j % len(stubs)].Assist, r, keys.d1) for j, r in enumerate(sends)])
        outcome = defaultdict(set)
        for req, rep in zip(sends, replies):
            outcome[req.idempotency_key].add("refused" if rep == grpc.StatusCode.RESOURCE_EXHAUSTED else
                                             "allowed" if isinstance(rep, pb.AssistResponse) else rep)
        assert all(len(v) == 1 for v in outcome.values()), "a retry got a different decision"
        return Counter(next(iter(v)) for v in outcome.values())

    async def go():
        channels = [grpc.aio.insecure_channel(addresses[i % len(addresses)], options=OWN_CONNECTION)
                    for i in range(4)]
        stubs = [pb_grpc.CloudGatewayStub(ch) for ch in channels]
        try:
            stub, admin = stubs[0], pb_grpc.GatewayAdminStub(channels[0])
            await admin.SetTau(pb.SetTauRequest(task="science", schedule=[pb.TauStep(tau=0.25)],
                                                mode=pb.MODE_ENFORCE, burst=50), metadata=md(keys.admin), timeout=10)
            first = await spend(stubs, "a", phase_spend_1)
            reqs = [pb.ReportUsageRequest(task="science", responses=r, idempotency_key=f"r{i}")
                    for i, r in enumerate(reports)]
            replies = await asyncio.gather(*[call(stubs[j % 4].ReportUsage, q, keys.d1)
                                             for j, q in enumerate(reqs + reqs[:5])])
            assert all(isinstance(r, pb.ReportUsageResponse) for r in replies)
            second = await spend(stubs, "b", phase_spend_2)
            final = await stub.GetBudget(pb.GetBudgetRequest(task="science"), metadata=md(keys.d1), timeout=10)
            return first, second, final.telemetry
        finally:
            for ch in channels:
                await ch.close()

    first, second, t = asyncio.run(go())
    # The rule, applied in one order (any order gives the same totals within a phase).
    c, allowed = b.fresh(policy), Counter()
    for _ in range(phase_spend_1):
        ok, c = b.assist(c, policy)
        allowed["a", ok] += 1
    for r in reports:
        c = b.report(c, policy, r, 0)
    for _ in range(phase_spend_2):
        ok, c = b.assist(c, policy)
        allowed["b", ok] += 1
    assert first == Counter(allowed=allowed["a", True], refused=allowed["a", False]) == Counter(allowed=50, refused=20)
    assert second == Counter(allowed=allowed["b", True], refused=allowed["b", False])
    assert second["allowed"] == min(phase_spend_2, sum(reports) // 4)
    assert (t.cloud_calls, t.denials, t.responses) == (c.cloud_calls, c.denials, c.responses)
    assert t.credit == c.credit_ppm / b.PPM
