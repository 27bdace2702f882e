"""A lean, auto-pipelining Redis connection for the metered hot path (RESP2, one TCP connection).

Why not redis-py here: its asyncio client spends ~100 us of Python per command (pool checkout,
retry wrapper, pure-Python reply parser) and sends each command in its own write. This connection
encodes a command once, buffers every command issued in one event-loop tick into one write, and
parses replies in order as they arrive, so 64 concurrent metered calls cost a few writes and one
Redis event-loop pass (which, with `appendfsync always`, also shares one fsync).

Guarantees the store relies on: replies are matched to commands by order (Redis answers in order
on a connection); a lost connection fails every command in flight with `ConnectionLost` (it may or
may not have run: callers retry with the same idempotency key) and the next command reconnects.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque


class ConnectionLost(ConnectionError):
    pass


class ReplyError(Exception):
    """An error reply (`-ERR ...`, `-NOSCRIPT ...`): the command reached Redis and failed there."""


class _Incomplete(Exception):
    pass


def encode_command(args: tuple) -> bytes:
    """RESP array of bulk strings: encode_command(("GET", "k")) == b"*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n"."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if type(a) is not bytes:
            a = str(a).encode()
        parts += (b"$%d\r\n" % len(a), a, b"\r\n")
    return b"".join(parts)


def parse_reply(buf: bytes | bytearray, pos: int = 0):
    """One RESP2 reply from `buf[pos:]` -> (value, next position); raises _Incomplete if cut short.

    Bulk strings stay bytes, `$-1`/`*-1` are None, errors are ReplyError values (not raised)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line, nxt = buf[pos:pos + 1], buf[pos + 1:end], end + 2
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            raise _Incomplete
        return bytes(buf[nxt:nxt + n]), nxt + n + 2
    if kind == b":":
        return int(line), nxt
    if kind == b"+":
        return bytes(line), nxt
    if kind == b"-":
        return ReplyError(bytes(line).decode(errors="replace")), nxt
    if kind == b"*":
        n = int(line)
        if n < 0:
            return None, nxt
        items = []
        for _ in range(n):
            item, nxt = parse_reply(buf, nxt)
            items.append(item)
        return items, nxt
    raise ValueError(f"not a RESP2 reply: {bytes(buf[pos:pos + 32])!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.pending: deque[asyncio.Future] = deque()
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.lost: Exception | None = None
        self.writes = 0  # at most one per event-loop tick

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, data: bytes) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        if not self.out:
            asyncio.get_running_loop().call_soon(self._flush)
        self.out.append(data)
        self.pending.append(fut)
        return fut

    def _flush(self) -> None:
        if self.lost is None and self.out:
            self.transport.write(b"".join(self.out))
            self.writes += 1
        self.out.clear()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        pos = 0
        try:
            while pos < len(self.buf):
                value, pos = parse_reply(self.buf, pos)
                fut = self.pending.popleft()
                if not fut.done():  # a cancelled caller's reply is read and dropped
                    fut.set_result(value)
        except _Incomplete:
            pass
        del self.buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = ConnectionLost(f"connection to redis lost: {exc or 'closed by the server'}")
        while self.pending:
            fut = self.pending.popleft()
            if not fut.done():
                fut.set_exception(self.lost)


class PipelinedConnection:
    """`await conn.execute("EVALSHA", sha, ...)` -> the reply; error replies raise ReplyError."""

    def __init__(self, host: str = "127.0.0.1", port: int = 6379, db: int = 0, password: str | None = None,
                 username: str | None = None, path: str | None = None, tls: bool = False,
                 connect_timeout_s: float = 5.0):
        self._where = dict(host=host, port=port, path=path, tls=tls)
        self._hello = ([("AUTH", *([username] if username else []), password)] if password else []) + \
                      ([("SELECT", db)] if db else [])
        self._timeout = connect_timeout_s
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def execute(self, *args):
        proto = self._proto
        if proto is None or proto.lost is not None:
            proto = await self._connect()
        reply = await proto.send(encode_command(args))
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def execute_adjacent(self, *commands: tuple):
        """Send the commands back to back in one write (nothing in between on this connection) and return
        the last reply: Redis Cluster's `ASKING` must come right before the command it is for."""
        proto = self._proto
        if proto is None or proto.lost is not None:
            proto = await self._connect()
        futures = [proto.send(encode_command(cmd)) for cmd in commands]
        replies = [await fut for fut in futures]
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise reply
        return replies[-1]

    async def primaries(self) -> list[PipelinedConnection]:
        """The connections to every node that holds keys (one Redis: this one; see cluster.py)."""
        return [self]

    async def broadcast(self, *args) -> list:
        """`execute` on every node that holds keys (SCRIPT LOAD): here, once."""
        return [await self.execute(*args)]

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # one reconnect for all the callers that found it lost
            if self._proto is not None and self._proto.lost is None:
                return self._proto
            loop, w = asyncio.get_running_loop(), self._where
            try:
                if w["path"]:
                    opening = loop.create_unix_connection(_Protocol, w["path"])
                else:
                    opening = loop.create_connection(_Protocol, w["host"], w["port"],
                                                     ssl=ssl.create_default_context() if w["tls"] else None)
                _, proto = await asyncio.wait_for(opening, self._timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                raise ConnectionLost(f"cannot connect to redis: {exc or 'timeout'}") from None
            for cmd in self._hello:
                reply = await proto.send(encode_command(cmd))
                if isinstance(reply, ReplyError):
                    proto.transport.close()
                    raise reply
            self._proto = proto
            return proto

    async def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None
