"""Redis Cluster: key slots and URL parsing by hand, then the routing connection and the store on a
real three-primary cluster (redis-server, cluster-enabled; MOVED and ASK from a live slot migration).

The store's concurrency and idempotency tests run on the cluster too: test_store_agreement.py and
test_load.py take it as one more store.
"""

from __future__ import annotations

import asyncio
import subprocess
import zlib

import pytest

from cloud_gateway.store.cluster import (
    ClusterConnection, command_key, parse_cluster_url, redirect_address, slot_owners,
)
from cloud_gateway.store.slots import crc16, hash_tag, key_slot


def test_crc16_and_key_slot_by_hand():
    assert crc16(b"123456789") == 0x31C3  # the XMODEM check value (Redis cluster spec, appendix A)
    assert crc16(b"") == 0
    assert key_slot("foo") == 12182 and key_slot(b"foo") == 12182  # CLUSTER KEYSLOT foo
    assert key_slot("123456789") == 0x31C3 % 16384 == 12739


@pytest.mark.parametrize("key, tag", [
    (b"{user1000}.following", b"user1000"),
    (b"foo{}{bar}", b"foo{}{bar}"),  # an empty tag: the whole key
    (b"foo{{bar}}zap", b"{bar"),  # from the first { to the first } after it
    (b"foo{bar}{zap}", b"bar"),  # only the first tag counts
    (b"gw:{17}:c:d1:math", b"17"),
    (b"no-tag", b"no-tag"),
    (b"open{only", b"open{only"),
])
def test_hash_tag_rules_of_the_cluster_spec(key, tag):
    assert hash_tag(key) == tag


def test_key_slot_agrees_with_redis_py():
    from redis.crc import key_slot as redis_py_key_slot

    for i in range(500):
        key = f"gw:{{{i}}}:i:dev-{i}:{zlib.crc32(str(i).encode())}".encode()
        assert key_slot(key) == redis_py_key_slot(key)


def test_parse_cluster_url():
    assert parse_cluster_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7001") == {
        "seeds": [("10.0.0.1", 7000), ("10.0.0.2", 7001)], "username": None, "password": None, "tls": False}
    assert parse_cluster_url("rediss+cluster://gw:p%40ss@h:7000/0") == {
        "seeds": [("h", 7000)], "username": "gw", "password": "p@ss", "tls": True}
    assert parse_cluster_url("redis+cluster://:secret@h:7000")["password"] == "secret"
    with pytest.raises(ValueError, match="only database 0"):
        parse_cluster_url("redis+cluster://h:7000/2")
    with pytest.raises(ValueError, match="not host:port"):
        parse_cluster_url("redis+cluster://h")
    with pytest.raises(ValueError, match="not a redis\\+cluster"):
        parse_cluster_url("redis://h:6379")


def test_command_key_routing_rules():
    assert command_key(("EVALSHA", "abc", 4, "k1", "k2", "k3", "k4", "report")) == "k1"
    assert command_key(("EVAL", "return 1", 0)) is None
    assert command_key(("HSET", "h", "f", "v")) == "h"
    assert command_key(("SCAN", b"0", "MATCH", "*")) is None
    assert command_key(("script", "LOAD", "x")) is None


def test_slot_owners_and_redirects():
    reply = [[0, 1, [b"10.0.0.1", 7000, b"id1"]], [2, 16383, [b"", 7001, b"id2"], [b"10.0.0.9", 7009, b"r"]]]
    owner = slot_owners(reply, "10.0.0.5")
    assert owner[0] == owner[1] == ("10.0.0.1", 7000)
    assert owner[2] == owner[16383] == ("10.0.0.5", 7001)  # no host announced: the one that answered
    assert len(owner) == 16384
    assert slot_owners([[0, 9, [b"h", 1, b"i"]]], "x")[10] is None  # unserved
    assert redirect_address("127.0.0.1:7001", ("h", 1)) == ("127.0.0.1", 7001)
    assert redirect_address(":7001", ("h", 1)) == ("h", 7001)


def cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.integration
def test_cluster_connection_routes_and_follows_moved_and_ask(redis_cluster):
    ports = [n.port for n in redis_cluster.nodes]

    async def go():
        conn = ClusterConnection([("127.0.0.1", ports[0])])
        try:
            keys = [f"k{i}" for i in range(300)]
            assert await asyncio.gather(*(conn.execute("SET", k, k) for k in keys)) == [b"OK"] * 300
            # each key is on the primary that owns its slot, and the three primaries share them
            held = [int(cli(p, "DBSIZE")) for p in ports]
            assert sum(held) == 300 and min(held) > 50, held
            for k in keys[:20]:
                assert int(cli(ports[0], "CLUSTER", "KEYSLOT", k)) == key_slot(k)

            # a live migration of one key's slot from its owner to another node: ASK, then MOVED
            key, slot = "k7", key_slot("k7")
            ids = {int(line.split()[1].split(":")[1].split("@")[0]): line.split()[0]
                   for line in cli(ports[0], "CLUSTER", "NODES").splitlines()}
            src = next(p for p in ports if cli(p, "GET", key) == key)
            dst = next(p for p in ports if p != src)
            cli(dst, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", ids[src])
            cli(src, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", ids[dst])
            cli(src, "MIGRATE", "127.0.0.1", str(dst), "", "0", "5000", "KEYS", key)
            assert await conn.execute("GET", key) == b"k7"  # ASK: ASKING + GET on the importing node
            assert conn._owner[slot] == ("127.0.0.1", src)  # ASK leaves the map as it was
            for p in ports:
                cli(p, "CLUSTER", "SETSLOT", str(slot), "NODE", ids[dst])
            assert await conn.execute("GET", key) == b"k7"  # MOVED: the map is read again
            assert (await conn.execute("GET", key), conn._owner[slot]) == (b"k7", ("127.0.0.1", dst))
            assert len(await conn.primaries()) == 3
            assert await conn.broadcast("PING") == [b"PONG"] * 3
        finally:
            await conn.close()

    asyncio.run(go())


@pytest.mark.integration
def test_store_spreads_devices_over_the_cluster_and_refuses_a_plain_node(redis_cluster, redis_server):
    from cloud_gateway.store.redis_store import CLUSTER_BUCKETS, RedisStore
    from collab import budget as b

    policy = b.Policy(((0, 300_000),), "meter", 4 * b.PPM, 256)

    async def go():
        store = RedisStore(redis_cluster.url, b.Limits(10**9, 10**6, 10**9, 10**6))
        try:
            await store.seed_policies({"math": policy})
            for p in (n.port for n in redis_cluster.nodes):  # every primary holds its buckets' policy copies
                assert int(cli(p, "DBSIZE")) > CLUSTER_BUCKETS // 4
            await asyncio.gather(*(store.report(f"d{i}", "math", 3, 1, "r") for i in range(60)))
            snaps = await store.budgets()
            assert len(snaps) == 60 and {s.counters.responses for s in snaps} == {3}
            await store.set_policy("math", b.Policy(((0, 500_000),), "enforce", 2 * b.PPM, 64))
            assert {(await store.get(f"d{i}", "math")).tau_ppm for i in range(60)} == {500_000}  # every bucket's copy
        finally:
            await store.close()
        wrong = RedisStore(f"redis+cluster://127.0.0.1:{redis_server.port}", b.Limits(1, 1, 1, 1))
        try:
            with pytest.raises(Exception, match="not a cluster node"):
                await wrong.ping()
        finally:
            await wrong.close()

    asyncio.run(go())
