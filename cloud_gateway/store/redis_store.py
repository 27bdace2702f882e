"""The fleet budget store: Redis, each metered call one Lua script (`budget.lua`), atomic.

The only module of the project that imports `redis`. Keys, each with the hash tag `{b}` of the
device's bucket b: `gw:{b}:p:<task>` (policy hash, one copy per bucket), `gw:{b}:c:<device>:<task>`
(counters hash), `gw:{b}:i:<device>:<key>` (remembered answers, with TTL), `gw:{b}:s:<device>:<report
key>` (help seen for a report and whether it was counted, with TTL). Every key one Lua call touches
shares the tag, so on a Redis Cluster each call runs in one slot; a policy change writes every
bucket's copy. One Redis has one bucket (`{0}`); a cluster (`redis+cluster://` URL) has
CLUSTER_BUCKETS, crc32(device) picking a device's: the unit by which a cluster spreads the fleet.
Durability is Redis's: run it with `--appendonly yes --appendfsync always` (docs/gateway.md).
Every command goes through an auto-pipelining connection (`resp.PipelinedConnection`, one per
cluster primary in `cluster.ClusterConnection`): the metered calls of one event-loop tick leave in
one write per node; redis-py only parses the URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from redis.connection import parse_url

from collab import budget as b
from cloud_gateway.store.base import (
    Completion, Snapshot, StoreUnavailable, UnknownTask, decode, policy_from_json, policy_to_json, snapshot,
)
from cloud_gateway.store.cluster import ClusterConnection, parse_cluster_url
from cloud_gateway.store.resp import ConnectionLost, PipelinedConnection, ReplyError

LUA = (Path(__file__).parent / "budget.lua").read_text()
LUA_SHA = hashlib.sha1(LUA.encode()).hexdigest()
# OOM: Redis at `maxmemory` under `noeviction` refuses writes (docs/gateway.md): nothing was counted
UNAVAILABLE_REPLIES = ("LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "OOM")
# Part of the data layout: changing it moves devices to other buckets (their counters stay behind).
# 1,024 tags spread over a cluster's primaries within a few per cent (3 primaries: +-4.6%, 1 sigma).
CLUSTER_BUCKETS = 1024
# Create a policy hash only if the task has none, in one step (an admin's change is never lost).
SEED_LUA = "if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end"


class RedisStore:
    def __init__(self, url: str, limits: b.Limits, idempotency_ttl_s: float = 86400.0,
                 clock: Callable[[], float] = time.time):
        self.url = url
        self.limits, self.clock = limits, clock
        self.ttl = max(1, math.ceil(idempotency_ttl_s))  # EX takes whole seconds
        self._conn, self.buckets = _connection(url)
        self._tags = [f"{{{i}}}" for i in range(self.buckets)]

    # -- policies ---------------------------------------------------------------------------------
    async def seed_policies(self, policies: dict[str, b.Policy]) -> None:
        for task, p in policies.items():
            fields = [x for kv in _policy_fields(p).items() for x in kv]
            await asyncio.gather(*(self._cmd("EVAL", SEED_LUA, 1, _pk(tag, task), *fields) for tag in self._tags))

    async def set_policy(self, task: str, policy: b.Policy) -> None:
        """Every bucket's copy; not atomic across buckets on a cluster: a failed call leaves some copies old,
        and the admin's retry (the same values) repairs them."""
        fields = [x for kv in _policy_fields(policy).items() for x in kv]
        await asyncio.gather(*(self._cmd("HSET", _pk(tag, task), *fields) for tag in self._tags))

    async def policies(self) -> dict[str, b.Policy]:
        return {key.decode().split(":", 3)[3]: await self._policy(key)
                for key in await self._scan(_pk(self._tags[0], "*"))}

    async def _policy(self, key: bytes) -> b.Policy:
        flat = await self._cmd("HGETALL", key)
        h = {k.decode(): v.decode() for k, v in zip(flat[::2], flat[1::2])}
        return policy_from_json({"schedule": json.loads(h["schedule"]), "mode": h["mode"],
                                 "burst_ppm": h["burst_ppm"], "window": h["window"]})

    # -- metered calls ----------------------------------------------------------------------------
    async def report(self, device, task, responses, help_requests, key, offline_help=0) -> Snapshot:
        return await self._call(device, task, key, "report", "", key, responses, help_requests, offline_help)

    async def assist(self, device, task, key, subject="", help_requests=1, report_key="") -> Snapshot:
        return await self._call(device, task, key, "assist", subject, report_key, help_requests,
                                "1" if report_key else "0")

    async def get(self, device, task) -> Snapshot:
        return await self._call(device, task, "", "get", "", "")

    async def _call(self, device, task, key, op, subject, scope_key, *args) -> Snapshot:
        tag = self._tag(device)
        try:
            replayed, answer = await self._eval(_pk(tag, task), _ck(tag, device, task), _ik(tag, device, key),
                                                _sk(tag, device, scope_key), op, task, self.ttl, subject,
                                                *self._bounds(), *args)
        except ReplyError as exc:
            if "UNKNOWN_TASK" in str(exc):
                raise UnknownTask(task) from None
            raise
        return decode(device, op, task, answer, replayed=bool(replayed), subject=subject)

    async def completion(self, device, key) -> Completion | None:
        prior = await self._cmd("GET", _ik(self._tag(device), device, "done:" + key))
        return None if prior is None else Completion.from_json(prior, replayed=True)

    async def complete(self, device, task, key, done: Completion) -> Completion:
        tokens = done.prompt_tokens + done.completion_tokens
        tag = self._tag(device)
        replayed, record = await self._eval(_pk(tag, task), _ck(tag, device, task), _ik(tag, device, "done:" + key),
                                            _sk(tag, device, ""), "complete", task, self.ttl, "", *self._bounds(),
                                            done.to_json(), tokens)
        return Completion.from_json(record, replayed=True) if replayed else done

    def _bounds(self) -> tuple[int, int, int, int, int]:
        """budget.lua's ARGV[5..9]: the clock (ms) and the limits."""
        lim = self.limits
        return (int(self.clock() * 1000), lim.responses_rate, lim.responses_burst, lim.assists_rate,
                lim.assists_burst)

    async def _eval(self, *keys_and_args):
        """budget.lua by its SHA (4 keys); loads the script if Redis lacks it (a restart empties the
        script cache; EVALSHA of an unknown script runs nothing, so the second try is safe)."""
        try:
            return await self._cmd("EVALSHA", LUA_SHA, 4, *keys_and_args)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self._cmd("SCRIPT", "LOAD", LUA, broadcast=True)  # on a cluster: every primary
        return await self._cmd("EVALSHA", LUA_SHA, 4, *keys_and_args)

    def _tag(self, device: str) -> str:
        return self._tags[zlib.crc32(device.encode()) % self.buckets] if self.buckets > 1 else self._tags[0]

    async def _cmd(self, *args, node: PipelinedConnection | None = None, broadcast: bool = False):
        """One command, routed by its key (or on `node`, or on every primary), Redis's errors mapped to the store's."""
        try:
            if broadcast:
                return await self._conn.broadcast(*args)
            return await (node or self._conn).execute(*args)
        except ConnectionLost as exc:
            raise StoreUnavailable(f"redis at {self.url}: {exc}") from None
        except ReplyError as exc:
            if str(exc).startswith(UNAVAILABLE_REPLIES):  # up but not serving yet: retry later
                raise StoreUnavailable(f"redis at {self.url}: {exc}") from None
            raise

    async def _scan(self, match: str) -> list[bytes]:
        keys = []
        try:
            nodes = await self._conn.primaries()
        except ConnectionLost as exc:
            raise StoreUnavailable(f"redis at {self.url}: {exc}") from None
        for node in nodes:
            cursor = b"0"
            while True:
                cursor, batch = await self._cmd("SCAN", cursor, "MATCH", match, "COUNT", 1000, node=node)
                keys += batch
                if cursor == b"0":
                    break
        return sorted(set(keys))  # SCAN may return a key twice

    # -- reads and admin --------------------------------------------------------------------------
    async def budgets(self, device="", task="") -> list[Snapshot]:
        policies = await self.policies()
        out = []
        for key in await self._scan(_ck(self._tag(device) if device else "*", device or "*", task or "*")):
            parts = key.decode().split(":")  # the glob's first * may also match another kind of key
            if len(parts) != 5 or parts[2] != "c":
                continue
            dev, tsk = parts[3], parts[4]
            if tsk in policies:
                vals = await self._cmd("HMGET", key, *b.FIELDS)
                out.append(snapshot(dev, tsk, b.Counters(*(int(v or 0) for v in vals)), policies[tsk]))
        return sorted(out, key=lambda s: (s.device, s.task))

    async def reset(self, device, task="") -> int:
        keys = await self._scan(_ck(self._tag(device), device, task or "*"))  # one bucket: one slot for DEL
        return await self._cmd("DEL", *keys) if keys else 0

    async def ping(self) -> bool:
        return await self._cmd("PING") == b"PONG"

    async def close(self) -> None:
        await self._conn.close()


def _connection(url: str) -> tuple[PipelinedConnection | ClusterConnection, int]:
    """The connection for a URL and its number of buckets: redis+cluster:// is a cluster, else one Redis."""
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        return ClusterConnection(**parse_cluster_url(url)), CLUSTER_BUCKETS
    u = parse_url(url)
    return PipelinedConnection(host=u.get("host", "127.0.0.1"), port=int(u.get("port", 6379)), db=int(u.get("db", 0)),
                               password=u.get("password"), username=u.get("username"), path=u.get("path"),
                               tls=url.startswith("rediss://")), 1


def _policy_fields(p: b.Policy) -> dict[str, str]:
    d = policy_to_json(p)
    return {"schedule": json.dumps(d["schedule"]), "mode": d["mode"], "burst_ppm": str(d["burst_ppm"]),
            "window": str(d["window"])}


def _pk(tag: str, task: str) -> str:
    return f"gw:{tag}:p:{task}"


def _ck(tag: str, device: str, task: str) -> str:
    return f"gw:{tag}:c:{device}:{task}"


def _ik(tag: str, device: str, key: str) -> str:
    return f"gw:{tag}:i:{device}:{key}"


def _sk(tag: str, device: str, report_key: str) -> str:
    return f"gw:{tag}:s:{device}:{report_key}"
