"""The fleet budget store: Redis, each metered call one Lua script (`budget.lua`), atomic.

The only module of the project that imports `redis`. Keys: `gw:p:<task>` (policy hash),
`gw:c:<device>:<task>` (counters hash), `gw:i:<device>:<key>` (remembered answers, with TTL),
`gw:s:<device>:<report key>` (help seen for a report and whether it was counted, with TTL).
Durability is Redis's: run it with `--appendonly yes --appendfsync always` (docs/gateway.md).
Every command goes through one auto-pipelining connection (`resp.PipelinedConnection`): the
metered calls of one event-loop tick leave in one write; redis-py only parses the URL.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from redis.connection import parse_url

from collab import budget as b
from cloud_gateway.store.base import (
    Completion, Snapshot, StoreUnavailable, UnknownTask, decode, policy_from_json, policy_to_json, snapshot,
)
from cloud_gateway.store.resp import ConnectionLost, PipelinedConnection, ReplyError

LUA = (Path(__file__).parent / "budget.lua").read_text()
LUA_SHA = hashlib.sha1(LUA.encode()).hexdigest()
# OOM: Redis at `maxmemory` under `noeviction` refuses writes (docs/gateway.md): nothing was counted
UNAVAILABLE_REPLIES = ("LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "OOM")
# Create a policy hash only if the task has none, in one step (an admin's change is never lost).
SEED_LUA = "if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end"


class RedisStore:
    def __init__(self, url: str, limits: b.Limits, idempotency_ttl_s: float = 86400.0,
                 clock: Callable[[], float] = time.time):
        self.url = url
        self.limits, self.clock = limits, clock
        self.ttl = max(1, math.ceil(idempotency_ttl_s))  # EX takes whole seconds
        self._conn = _connection(url)

    # -- policies ---------------------------------------------------------------------------------
    async def seed_policies(self, policies: dict[str, b.Policy]) -> None:
        for task, p in policies.items():
            await self._cmd("EVAL", SEED_LUA, 1, _pk(task), *(x for kv in _policy_fields(p).items() for x in kv))

    async def set_policy(self, task: str, policy: b.Policy) -> None:
        await self._cmd("HSET", _pk(task), *(x for kv in _policy_fields(policy).items() for x in kv))

    async def policies(self) -> dict[str, b.Policy]:
        return {key.decode()[5:]: await self._policy(key) for key in await self._scan("gw:p:*")}

    async def _policy(self, key: bytes) -> b.Policy:
        flat = await self._cmd("HGETALL", key)
        h = {k.decode(): v.decode() for k, v in zip(flat[::2], flat[1::2])}
        return policy_from_json({"schedule": json.loads(h["schedule"]), "mode": h["mode"],
                                 "burst_ppm": h["burst_ppm"], "window": h["window"]})

    # -- metered calls ----------------------------------------------------------------------------
    async def report(self, device, task, responses, help_requests, key, offline_help=0) -> Snapshot:
        return await self._call(device, task, key, "report", "", _sk(device, key), responses, help_requests,
                                offline_help)

    async def assist(self, device, task, key, subject="", help_requests=1, report_key="") -> Snapshot:
        return await self._call(device, task, key, "assist", subject, _sk(device, report_key), help_requests,
                                "1" if report_key else "0")

    async def get(self, device, task) -> Snapshot:
        return await self._call(device, task, "", "get", "", _sk(device, ""))

    async def _call(self, device, task, key, op, subject, scope, *args) -> Snapshot:
        try:
            replayed, answer = await self._eval(_pk(task), _ck(device, task), _ik(device, key), scope,
                                                op, task, self.ttl, subject, *self._bounds(), *args)
        except ReplyError as exc:
            if "UNKNOWN_TASK" in str(exc):
                raise UnknownTask(task) from None
            raise
        return decode(device, op, task, answer, replayed=bool(replayed), subject=subject)

    async def completion(self, device, key) -> Completion | None:
        prior = await self._cmd("GET", _ik(device, "done:" + key))
        return None if prior is None else Completion.from_json(prior, replayed=True)

    async def complete(self, device, task, key, done: Completion) -> Completion:
        tokens = done.prompt_tokens + done.completion_tokens
        replayed, record = await self._eval(_pk(task), _ck(device, task), _ik(device, "done:" + key),
                                            _sk(device, ""), "complete", task, self.ttl, "", *self._bounds(),
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
        await self._cmd("SCRIPT", "LOAD", LUA)
        return await self._cmd("EVALSHA", LUA_SHA, 4, *keys_and_args)

    async def _cmd(self, *args):
        try:
            return await self._conn.execute(*args)
        except ConnectionLost as exc:
            raise StoreUnavailable(f"redis at {self.url}: {exc}") from None
        except ReplyError as exc:
            if str(exc).startswith(UNAVAILABLE_REPLIES):  # up but not serving yet: retry later
                raise StoreUnavailable(f"redis at {self.url}: {exc}") from None
            raise

    async def _scan(self, match: str) -> list[bytes]:
        keys, cursor = [], b"0"
        while True:
            cursor, batch = await self._cmd("SCAN", cursor, "MATCH", match, "COUNT", 1000)
            keys += batch
            if cursor == b"0":
                return sorted(set(keys))  # SCAN may return a key twice

    # -- reads and admin --------------------------------------------------------------------------
    async def budgets(self, device="", task="") -> list[Snapshot]:
        policies = await self.policies()
        out = []
        for key in await self._scan(f"gw:c:{device or '*'}:{task or '*'}"):
            _, _, dev, tsk = key.decode().split(":")
            if tsk in policies:
                vals = await self._cmd("HMGET", key, *b.FIELDS)
                out.append(snapshot(dev, tsk, b.Counters(*(int(v or 0) for v in vals)), policies[tsk]))
        return sorted(out, key=lambda s: (s.device, s.task))

    async def reset(self, device, task="") -> int:
        keys = await self._scan(f"gw:c:{device}:{task or '*'}")
        return await self._cmd("DEL", *keys) if keys else 0

    async def ping(self) -> bool:
        return await self._cmd("PING") == b"PONG"

    async def close(self) -> None:
        await self._conn.close()


def _connection(url: str) -> PipelinedConnection:
    u = parse_url(url)
    return PipelinedConnection(host=u.get("host", "127.0.0.1"), port=int(u.get("port", 6379)), db=int(u.get("db", 0)),
                               password=u.get("password"), username=u.get("username"), path=u.get("path"),
                               tls=url.startswith("rediss://"))


def _policy_fields(p: b.Policy) -> dict[str, str]:
    d = policy_to_json(p)
    return {"schedule": json.dumps(d["schedule"]), "mode": d["mode"], "burst_ppm": str(d["burst_ppm"]),
            "window": str(d["window"])}


def _pk(task: str) -> str:
    return f"gw:p:{task}"


def _ck(device: str, task: str) -> str:
    return f"gw:c:{device}:{task}"


def _ik(device: str, key: str) -> str:
    return f"gw:i:{device}:{key}"


def _sk(device: str, report_key: str) -> str:
    return f"gw:s:{device}:{report_key}"
