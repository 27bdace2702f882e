"""Redis Cluster routing: one auto-pipelining connection (resp.PipelinedConnection) per primary.

Why not redis-py's `RedisCluster`: it sends each command in its own write with ~100 us of Python
per command, which is what resp.py exists to avoid; the routing the store needs is small.

A command goes to the primary that owns its first key's slot (slots.py), from the map that
CLUSTER SLOTS returns (asked of the seed nodes first, then of the nodes already known). `MOVED`
(the slot has a new owner: a reshard or a failover) drops the map, so the next command reads it
again, and sends the command to the node named; `ASK` (the slot is being migrated and this key has
already moved) sends `ASKING` and the command back to back to the node named, the map unchanged. A
lost node connection drops the map too (a failover promotes a replica) and fails the command with
ConnectionLost: it may or may not have run, and callers retry with the same idempotency key, the
same contract as one connection. Keyless commands go to any primary.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

from cloud_gateway.store.resp import ConnectionLost, PipelinedConnection, ReplyError
from cloud_gateway.store.slots import SLOTS, key_slot

MAX_REDIRECTS = 5
KEYLESS = frozenset({"PING", "SCAN", "SCRIPT", "CLUSTER", "INFO", "ASKING"})
Address = tuple[str, int]


def parse_cluster_url(url: str) -> dict:
    """redis+cluster://[user:password@]host:port[,host:port...][/0] -> seeds, username, password, tls.

    rediss+cluster:// is the same over TLS. A cluster has database 0 only: any other is refused."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("redis+cluster", "rediss+cluster"):
        raise ValueError(f"not a redis+cluster:// URL: {url!r}")
    netloc, _, db = rest.partition("/")
    if db.strip("/") not in ("", "0"):
        raise ValueError(f"a Redis Cluster has only database 0, the URL names {db!r}")
    userinfo, _, hosts = netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    seeds = []
    for hostport in hosts.split(","):
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"cluster seed {hostport!r} is not host:port (in {url!r})")
        seeds.append((host, int(port)))
    return {"seeds": seeds, "username": unquote(username) or None, "password": unquote(password) or None,
            "tls": scheme == "rediss+cluster"}


def command_key(args: tuple) -> str | bytes | None:
    """The key a command is routed by: EVAL/EVALSHA's first key, else the first argument; None if keyless."""
    name = args[0].upper()
    if name in ("EVAL", "EVALSHA"):
        return args[3] if int(args[2]) > 0 else None
    return None if name in KEYLESS else args[1]


def slot_owners(reply: list, default_host: str) -> list[Address | None]:
    """CLUSTER SLOTS reply -> the primary's address for each of the 16,384 slots (None: unserved).

    Each entry is [start, end, [host, port, id, ...], replicas...]; an empty or "?" host means
    the node did not announce one: it is the host that answered."""
    owner: list[Address | None] = [None] * SLOTS
    for start, end, primary, *_replicas in reply:
        host = primary[0].decode()
        addr = (host if host not in ("", "?") else default_host, int(primary[1]))
        owner[start:end + 1] = [addr] * (end + 1 - start)
    return owner


def redirect_address(target: str, current: Address) -> Address:
    """'127.0.0.1:7001' -> ('127.0.0.1', 7001); ':7001' (no host announced) -> the current host."""
    host, _, port = target.rpartition(":")
    return (host or current[0], int(port))


class ClusterConnection:
    """`await conn.execute(*args)` routed by slot; same errors as PipelinedConnection."""

    def __init__(self, seeds: list[Address], password: str | None = None, username: str | None = None,
                 tls: bool = False, connect_timeout_s: float = 5.0):
        if not seeds:
            raise ValueError("a cluster connection needs at least one seed host:port")
        self._seeds = list(seeds)
        self._opts = dict(password=password, username=username, tls=tls, connect_timeout_s=connect_timeout_s)
        self._nodes: dict[Address, PipelinedConnection] = {}
        self._owner: list[Address | None] | None = None
        self._refreshing: asyncio.Lock | None = None

    async def execute(self, *args):
        key = command_key(args)
        owner = self._owner or await self._refresh()
        addr = _primary(owner, None if key is None else key_slot(key))
        asking = False
        for _ in range(MAX_REDIRECTS):
            node = self._node(addr)
            try:
                return await (node.execute_adjacent(("ASKING",), args) if asking else node.execute(*args))
            except ConnectionLost:
                self._owner = None
                raise
            except ReplyError as exc:
                kind, _, rest = str(exc).partition(" ")
                if kind not in ("MOVED", "ASK"):
                    raise
                addr, asking = redirect_address(rest.split()[1], addr), kind == "ASK"
                if kind == "MOVED":
                    self._owner = None
        raise ConnectionLost(f"{args[0]}: more than {MAX_REDIRECTS} cluster redirections (a reshard under way?)")

    async def primaries(self) -> list[PipelinedConnection]:
        owner = self._owner or await self._refresh()
        return [self._node(a) for a in dict.fromkeys(a for a in owner if a is not None)]

    async def broadcast(self, *args) -> list:
        return list(await asyncio.gather(*(node.execute(*args) for node in await self.primaries())))

    async def close(self) -> None:
        for node in self._nodes.values():
            await node.close()
        self._nodes.clear()
        self._owner = None

    def _node(self, addr: Address) -> PipelinedConnection:
        if addr not in self._nodes:
            self._nodes[addr] = PipelinedConnection(host=addr[0], port=addr[1], **self._opts)
        return self._nodes[addr]

    async def _refresh(self) -> list[Address | None]:
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        async with self._refreshing:  # one CLUSTER SLOTS for all the callers that found the map gone
            if self._owner is not None:
                return self._owner
            errors = []
            for addr in dict.fromkeys([*self._seeds, *self._nodes]):
                try:
                    reply = await self._node(addr).execute("CLUSTER", "SLOTS")
                except ConnectionLost as exc:
                    errors.append(f"{addr[0]}:{addr[1]}: {exc}")
                    continue
                except ReplyError as exc:
                    if "cluster support disabled" in str(exc):
                        raise ReplyError(f"redis at {addr[0]}:{addr[1]} is not a cluster node: use a redis:// URL, "
                                         "not redis+cluster://") from None
                    errors.append(f"{addr[0]}:{addr[1]}: {exc}")
                    continue
                self._owner = slot_owners(reply, addr[0])
                return self._owner
            raise ConnectionLost("no redis cluster node answered CLUSTER SLOTS: " + "; ".join(errors))


def _primary(owner: list[Address | None], slot: int | None) -> Address:
    addr = next((a for a in owner if a is not None), None) if slot is None else owner[slot]
    if addr is None:
        raise ReplyError(f"CLUSTERDOWN slot {slot} is served by no node")
    return addr
