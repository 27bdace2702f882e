"""collab.budget (pure), the SQLite transaction and the Redis Lua script agree step by step."""

from __future__ import annotations

import asyncio
import random

import pytest

from collab import budget as b
from cloud_gateway.store.base import Completion, KeyReused, UnknownTask
from cloud_gateway.store.sqlite import SqliteStore

POLICIES = {
    "enf": b.Policy(((0, 300_000), (7, 100_000), (15, 700_000)), "enforce", 2 * b.PPM, 5),
    "met": b.Policy(((0, 250_000),), "meter", 1_500_000, 3),
}


def ops(seed: int, n: int = 120):
    rng = random.Random(seed)
    for i in range(n):
        task = rng.choice(list(POLICIES))
        if rng.random() < 0.5:
            r = rng.randint(0, 4)
            yield task, "report", (r, rng.randint(0, r)), f"k{i}"
        else:
            yield task, "assist", (), f"k{i}"


async def run_store(store):
    await store.seed_policies(POLICIES)
    out = []
    for task, op, args, key in ops(seed=7):
        s = await (store.report("d", task, *args, key) if op == "report" else store.assist("d", task, key))
        out.append((s.allowed, s.counters, s.tau_ppm))
    return out


def run_pure():
    state = {t: b.fresh(p) for t, p in POLICIES.items()}
    out = []
    for task, op, args, _ in ops(seed=7):
        p = POLICIES[task]
        allowed = True
        if op == "report":
            state[task] = b.report(state[task], p, *args)
        else:
            allowed, state[task] = b.assist(state[task], p)
        out.append((allowed, state[task], b.tau_at(p.schedule, state[task].responses)))
    return out


def test_pure_sequence_exercises_refusals_and_windows():
    out = run_pure()
    assert any(not allowed for allowed, _, _ in out)
    assert any(c.prev_responses for _, c, _ in out)


def test_sqlite_agrees_with_pure(tmp_path):
    async def go():
        store = SqliteStore(tmp_path / "b.db")
        try:
            return await run_store(store)
        finally:
            await store.close()

    assert asyncio.run(go()) == run_pure()


@pytest.mark.integration
def test_redis_lua_agrees_with_pure(redis_server):
    from cloud_gateway.store.redis_store import RedisStore

    async def go():
        store = RedisStore(redis_server.url)
        try:
            return await run_store(store)
        finally:
            await store.close()

    assert asyncio.run(go()) == run_pure()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def store_factory(request, tmp_path):
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "b.db")
    server = request.getfixturevalue("redis_server")
    from cloud_gateway.store.redis_store import RedisStore

    return lambda: RedisStore(server.url)


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
            with pytest.raises(KeyReused, match="met/test/1"):
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
        store = SqliteStore(tmp_path / "ttl.db", idempotency_ttl_s=0.05)
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
