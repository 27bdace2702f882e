"""cloud_gateway/store/resp.py: RESP2 encoding and parsing by hand, then the pipelined connection
against a real redis-server (order under concurrency, one write per tick, errors, restarts)."""

from __future__ import annotations

import asyncio

import pytest

from cloud_gateway.store.resp import (
    ConnectionLost, PipelinedConnection, ReplyError, _Incomplete, encode_command, parse_reply,
)


def test_encode_command_by_hand():
    assert encode_command(("GET", "k")) == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    assert encode_command(("SET", b"\x00\r\n", 12, "")) == b"*4\r\n$3\r\nSET\r\n$3\r\n\x00\r\n\r\n$2\r\n12\r\n$0\r\n\r\n"
    assert encode_command(("É",)) == b"*1\r\n$2\r\n\xc3\x89\r\n"  # lengths are bytes, not characters


@pytest.mark.parametrize("raw, value", [
    (b"+OK\r\n", b"OK"),
    (b":-42\r\n", -42),
    (b"$5\r\nhe\r\no\r\n", b"he\r\no"),  # a bulk string may hold CRLF
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*2\r\n:0\r\n$2\r\n{}\r\n", [0, b"{}"]),
    (b"*2\r\n*1\r\n:1\r\n$0\r\n\r\n", [[1], b""]),
])
def test_parse_reply_by_hand(raw, value):
    assert parse_reply(raw + b"+next\r\n") == (value, len(raw))


def test_parse_reply_error_is_a_value_and_cut_replies_wait():
    err, end = parse_reply(b"-NOSCRIPT No matching script\r\n")
    assert isinstance(err, ReplyError) and str(err) == "NOSCRIPT No matching script" and end == 30
    for cut in (b"$5\r\nhel", b"*2\r\n:0\r\n", b":1", b""):
        with pytest.raises(_Incomplete):
            parse_reply(cut)


@pytest.mark.integration
def test_pipelined_connection_against_redis(redis_server):
    async def go():
        conn = PipelinedConnection(port=redis_server.port)
        try:
            # 200 concurrent INCRs: each caller gets its own reply, in the order Redis ran them
            replies = await asyncio.gather(*[conn.execute("INCR", "n") for _ in range(200)])
            assert sorted(replies) == list(range(1, 201)) and replies == sorted(replies)
            writes = conn._proto.writes
            await asyncio.gather(*[conn.execute("PING") for _ in range(64)])
            assert conn._proto.writes == writes + 1  # one tick, one write
            with pytest.raises(ReplyError, match="WRONGTYPE"):
                await conn.execute("HGET", "n", "f")
            assert await conn.execute("GET", "n") == b"200"  # the connection survives an error reply

            redis_server.kill()
            with pytest.raises(ConnectionLost):
                await conn.execute("GET", "n")
            with pytest.raises(ConnectionLost):  # still down: refused, not hung
                await conn.execute("GET", "n")
            redis_server.start()
            assert await conn.execute("GET", "n") == b"200"  # reconnected; the AOF kept the count

            # a caller cancelled after sending: its reply is still read and dropped, the next is its own
            task = asyncio.ensure_future(conn.execute("INCR", "n"))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            task.cancel()
            assert await conn.execute("SET", "k", "v") == b"OK"
            assert await conn.execute("GET", "k") == b"v"
        finally:
            await conn.close()

    asyncio.run(go())


@pytest.mark.integration
def test_redis_store_reloads_the_script_after_a_restart(redis_server):
    from cloud_gateway.store.base import StoreUnavailable
    from cloud_gateway.store.redis_store import RedisStore
    from collab import budget as b

    async def go():
        store = RedisStore(redis_server.url, b.Limits(10**9, 10**6, 10**9, 10**6))
        try:
            await store.seed_policies({"math": b.Policy(((0, 300_000),), "meter", 4 * b.PPM, 256)})
            first = await store.report("d", "math", 8, 0, "r1")
            redis_server.restart()  # the AOF keeps the data, not the script cache
            again = None
            for _ in range(2):  # the first call may meet the dead connection: UNAVAILABLE, retried
                try:
                    again = await store.report("d", "math", 8, 0, "r2")
                    break
                except StoreUnavailable:
                    pass
            replay = await store.report("d", "math", 8, 0, "r1")
            return first, again, replay
        finally:
            await store.close()

    first, again, replay = asyncio.run(go())
    assert (first.counters.responses, again.counters.responses) == (8, 16)
    assert replay.replayed and replay.counters.responses == 8
