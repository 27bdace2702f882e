"""collab.budget (pure), the SQLite transaction and the Redis Lua script agree step by step."""

from __future__ import annotations

import asyncio
import random

import pytest

from collab import budget as b
from cloud_gateway.store.base import Completion, KeyReused, UnknownTask
from cloud_gateway.store.sqlite import SqliteStore

# Tight enough that the sequence below runs into both buckets: 1 response/s believed (burst 6),
# 1 Assist grant per 2 s (burst 3); each op is 0.4 s after the previous one.
LIMITS = b.Limits(responses_rate=1000, responses_burst=6, assists_rate=500, assists_burst=3)
WIDE = b.Limits(10**9, 10**6, 10**9, 10**6)  # never reached
STEP_MS = 400
T0_MS = 1_800_000_000_000
POLICIES = {
    "enf": b.Policy(((0, 300_000), (7, 100_000), (15, 700_000)), "enforce", 2 * b.PPM, 5),
    "met": b.Policy(((0, 250_000),), "meter", 1_500_000, 3),
}


def ops(seed: int, n: int = 160):
    """Reports and Assist calls sharing a few report scopes per task: some reports come twice
    (replays), some Assist calls name a report already counted (late) or none."""
    rng = random.Random(seed)
    for i in range(n):
        task = rng.choice(list(POLICIES))
        scope = f"{task}-r{rng.randint(0, 15)}"
        if rng.random() < 0.45:
            r = rng.randint(0, 4)
            h = rng.randint(0, r)
            yield task, "report", (r, h, rng.randint(0, h)), scope
        else:
            yield task, "assist", (rng.randint(0, 3), scope if rng.random() < 0.8 else ""), f"k{i}"


class Clock:
    """The stores' clock (seconds), moved by the test."""

    def __init__(self):
        self.ms = T0_MS

    def __call__(self) -> float:
        return self.ms / 1000


async def run_store(store, clock):
    await store.seed_policies(POLICIES)
    out = []
    for i, (task, op, args, key) in enumerate(ops(seed=7)):
        clock.ms = T0_MS + i * STEP_MS
        if op == "report":
            r, h, offline = args
            s = await store.report("d", task, r, h, key, offline)
        else:
            k, report_key = args
            s = await store.assist("d", task, key, "", k, report_key)
        out.append((s.allowed, s.counters, s.tau_ppm, s.report))
    return out


def run_pure():
    state = {t: b.fresh(p) for t, p in POLICIES.items()}
    scopes: dict[str, tuple[int, bool]] = {}  # report key -> (help seen, counted)
    answers: dict[str, tuple] = {}  # idempotency key -> the remembered answer
    out = []
    for i, (task, op, args, key) in enumerate(ops(seed=7)):
        now = T0_MS + i * STEP_MS
        if key in answers:
            out.append(answers[key])
            continue
        p = POLICIES[task]
        allowed, report = True, None
        if op == "report":
            r, h, offline = args
            seen, _ = scopes.get(key, (0, False))
            counted = b.report_help(seen, h, offline)
            tau_before = b.tau_at(p.schedule, state[task].responses)
            believed, state[task] = b.bounded_report(state[task], p, LIMITS, now, r, counted, h)
            report = (believed, counted, h, tau_before)
            scopes[key] = (seen, True)
        else:
            k, report_key = args
            allowed, state[task] = b.bounded_assist(state[task], p, LIMITS, now, k)
            seen, closed = scopes.get(report_key, (0, False)) if report_key else (0, True)
            if closed:
                state[task] = b.late_help(state[task], k)
            else:
                scopes[report_key] = (seen + k, False)
        answers[key] = (allowed, state[task], b.tau_at(p.schedule, state[task].responses), report)
        out.append(answers[key])
    return out


def test_pure_sequence_exercises_refusals_windows_mismatches_and_late_help():
    out = run_pure()
    assert any(not allowed for allowed, *_ in out)
    assert any(c.prev_responses for _, c, *_ in out)
    assert any(c.mismatches for _, c, *_ in out)
    assert any(c.credit_ppm < 0 for _, c, *_ in out)  # a group spent more credit than it had
    reports = [r for *_, r in out if r is not None]
    assert any(seen < reported for _, seen, reported, _ in reports)  # offline help believed
    assert any(c.flagged for _, c, *_ in out) and any(c.throttled for _, c, *_ in out)
    assert any(not allowed and b.was_throttled(allowed, "enforce", c.credit_ppm) for allowed, c, *_ in out)


def test_sqlite_agrees_with_pure(tmp_path):
    async def go():
        clock = Clock()
        store = SqliteStore(tmp_path / "b.db", LIMITS, clock=clock)
        try:
            return await run_store(store, clock)
        finally:
            await store.close()

    assert asyncio.run(go()) == run_pure()


@pytest.mark.integration
@pytest.mark.parametrize("server", ["redis_server", "redis_cluster"])
def test_redis_lua_agrees_with_pure(server, request):
    from cloud_gateway.store.redis_store import RedisStore

    url = request.getfixturevalue(server).url

    async def go():
        clock = Clock()
        store = RedisStore(url, LIMITS, clock=clock)
        try:
            return await run_store(store, clock)
        finally:
            await store.close()

    assert asyncio.run(go()) == run_pure()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.integration),
                        pytest.param("redis-cluster", marks=pytest.mark.integration)])
def store_factory(request, tmp_path):
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "b.db", WIDE)
    server = request.getfixturevalue("redis_cluster" if request.param == "redis-cluster" else "redis_server")
    from cloud_gateway.store.redis_store import RedisStore

    return lambda: RedisStore(server.url, WIDE)


def test_idempotency_replay_unknown_task_reset_and_tokens(store_factory):
    async def go():
        store = store_factory()
        try:
            await store.seed_policies(POLICIES)
            a = await store.report("d", "met", 4, 1, "r1")
            again = await store.report("d", "met", 4, 1, "r1")
            assert again.replayed and not a.replayed and again.counters == a.counters
            assert (await store.get("d", "met")).counters.responses == 4
            with pytest.raises(KeyReused):
                await store.assist("d", "met", "r1")
            with pytest.raises(UnknownTask):
                await store.report("d", "nope", 1, 0, "x")
            # The same key on another device is another call.
            assert not (await store.report("e", "met", 1, 0, "r1")).replayed
            await store.assist("d", "met", "a1", subject="met/test/1")
            assert (await store.assist("d", "met", "a1", subject="met/test/1")).replayed
            with pytest.raises(KeyReused, match="another example"):
                await store.assist("d", "met", "a1", subject="met/test/2")
            assert await store.completion("d", "a1") is None
            first = await store.complete("d", "met", "a1", Completion("yes", 10, 5, "reference"))
            second = await store.complete("d", "met", "a1", Completion("other", 1, 1, "reference"))
            assert first.completion == second.completion == "yes" and second.replayed
            assert (await store.get("d", "met")).counters.tokens == 15
            assert [(s.device, s.task) for s in await store.budgets()] == [("d", "met"), ("e", "met")]
            assert [s.device for s in await store.budgets(device="e")] == ["e"]
            assert await store.reset("d") == 1
            assert (await store.get("d", "met")).counters == b.fresh(POLICIES["met"])
            # An admin change survives a later seed.
            await store.set_policy("met", POLICIES["enf"])
            await store.seed_policies(POLICIES)
            assert (await store.policies())["met"] == POLICIES["enf"]
        finally:
            await store.close()

    asyncio.run(go())


def test_sqlite_forgets_keys_after_the_ttl(tmp_path):
    async def go():
        store = SqliteStore(tmp_path / "ttl.db", WIDE, idempotency_ttl_s=0.05)
        try:
            await store.seed_policies(POLICIES)
            await store.report("d", "met", 1, 0, "k")
            assert (await store.report("d", "met", 1, 0, "k")).replayed
            await asyncio.sleep(0.1)
            again = await store.report("d", "met", 1, 0, "k")  # a new call once the key expired
            assert not again.replayed and again.counters.responses == 2
        finally:
            await store.close()

    asyncio.run(go())


def test_a_failing_call_does_not_undo_its_neighbours(store_factory):
    """SQLite commits concurrent calls together: a failing one is rolled back alone."""

    async def go():
        store = store_factory()
        try:
            await store.seed_policies(POLICIES)
            calls = [store.report("d", "met" if i % 3 else "nope", 1, 0, f"k{i}") for i in range(30)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert sum(isinstance(r, UnknownTask) for r in results) == 10
            assert (await store.get("d", "met")).counters.responses == 20
        finally:
            await store.close()

    asyncio.run(go())


def test_report_counts_the_help_its_assist_calls_carried(store_factory):
    """Help measured per report, each Assist once; an under-report is a mismatch; k credits per group."""
    async def go():
        store = store_factory()
        try:
            await store.seed_policies({"enf": b.Policy(((0, 500_000),), "enforce", 4 * b.PPM, 100)})
            a = await store.assist("d", "enf", "t1/0", "", 3, "t1/usage")  # credit 4 -> 1
            assert a.allowed and a.counters.credit_ppm == 1 * b.PPM
            assert (await store.assist("d", "enf", "t1/0", "", 3, "t1/usage")).replayed  # a retry: not again
            b1 = await store.assist("d", "enf", "t1/1", "", 2, "t1/usage")  # 1 credit: allowed, debt -1
            assert b1.allowed and b1.counters.credit_ppm == -1 * b.PPM
            refused = await store.assist("d", "enf", "t1/2", "", 1, "t1/usage")  # refused: still help
            assert not refused.allowed and refused.counters.denials == 1
            s = await store.report("d", "enf", 8, 2, "t1/usage")  # the device claims 2 of 6
            assert s.report == (8, 6, 2, 500_000)
            c = s.counters
            assert (c.responses, c.help_requests, c.reported_help, c.mismatches) == (8, 6, 2, 1)
            assert c.credit_ppm == -1 * b.PPM + 4 * b.PPM  # earned 8 * 0.5
            # An honest report, with one help request that never reached the gateway.
            await store.assist("d", "enf", "t2/0", "", 1, "t2/usage")
            s = await store.report("d", "enf", 4, 2, "t2/usage", 1)
            assert s.report[1:3] == (2, 2) and s.counters.mismatches == 1
            # A step run again after its report: a new Assist for it is late, counted once, directly.
            late = await store.assist("d", "enf", "t2/1", "", 2, "t2/usage")
            assert late.counters.help_requests == s.counters.help_requests + 2
            again = await store.report("d", "enf", 4, 2, "t2/usage", 1)
            assert again.replayed and again.report == s.report
        finally:
            await store.close()

    asyncio.run(go())
