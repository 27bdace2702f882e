"""The fleet budget store: Redis, each metered call one Lua script (`budget.lua`), atomic.

The only module of the project that imports `redis`. Keys: `gw:p:<task>` (policy hash),
`gw:c:<device>:<task>` (counters hash), `gw:i:<device>:<key>` (remembered answers, with TTL),
`gw:s:<device>:<report key>` (help seen for a report and whether it was counted, with TTL).
Durability is Redis's: run it with `--appendonly yes --appendfsync always` (docs/gateway.md).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from collab import budget as b
from cloud_gateway.store.base import (
    Completion, Snapshot, StoreUnavailable, UnknownTask, decode, policy_from_json, policy_to_json, snapshot,
)

LUA = (Path(__file__).parent / "budget.lua").read_text()
# Create a policy hash only if the task has none, in one step (an admin's change is never lost).
SEED_LUA = "if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end"


class RedisStore:
    def __init__(self, url: str, idempotency_ttl_s: float = 86400.0):
        self.url = url
        self.ttl = max(1, math.ceil(idempotency_ttl_s))  # EX takes whole seconds
        self.redis = aioredis.Redis.from_url(url, decode_responses=False)
        self._script = self.redis.register_script(LUA)
        self._seed = self.redis.register_script(SEED_LUA)

    # -- policies ---------------------------------------------------------------------------------
    async def seed_policies(self, policies: dict[str, b.Policy]) -> None:
        for task, p in policies.items():
            await self._seed(keys=[_pk(task)], args=[x for kv in _policy_fields(p).items() for x in kv])

    async def set_policy(self, task: str, policy: b.Policy) -> None:
        await self.redis.hset(_pk(task), mapping=_policy_fields(policy))

    async def policies(self) -> dict[str, b.Policy]:
        out = {}
        async for key in self.redis.scan_iter(match=b"gw:p:*", count=1000):
            out[key.decode()[5:]] = await self._policy(key)
        return out

    async def _policy(self, key: bytes | str) -> b.Policy:
        h = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(key)).items()}
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
            replayed, answer = await self._script(
                keys=[_pk(task), _ck(device, task), _ik(device, key), scope],
                args=[op, task, self.ttl, subject, *args])
        except ResponseError as exc:
            if "UNKNOWN_TASK" in str(exc):
                raise UnknownTask(task) from None
            raise
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"redis at {self.url}: {exc}") from None
        return decode(device, op, task, answer, replayed=bool(replayed), subject=subject)

    async def completion(self, device, key) -> Completion | None:
        try:
            prior = await self.redis.get(_ik(device, "done:" + key))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"redis at {self.url}: {exc}") from None
        return None if prior is None else Completion.from_json(prior, replayed=True)

    async def complete(self, device, task, key, done: Completion) -> Completion:
        tokens = done.prompt_tokens + done.completion_tokens
        try:
            replayed, record = await self._script(
                keys=[_pk(task), _ck(device, task), _ik(device, "done:" + key), _sk(device, "")],
                args=["complete", task, self.ttl, "", done.to_json(), tokens])
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"redis at {self.url}: {exc}") from None
        return Completion.from_json(record, replayed=True) if replayed else done

    # -- reads and admin --------------------------------------------------------------------------
    async def budgets(self, device="", task="") -> list[Snapshot]:
        policies = await self.policies()
        out = []
        async for key in self.redis.scan_iter(match=f"gw:c:{device or '*'}:{task or '*'}", count=1000):
            _, _, dev, tsk = key.decode().split(":")
            if tsk in policies:
                vals = await self.redis.hmget(key, *b.FIELDS)
                out.append(snapshot(dev, tsk, b.Counters(*(int(v or 0) for v in vals)), policies[tsk]))
        return sorted(out, key=lambda s: (s.device, s.task))

    async def reset(self, device, task="") -> int:
        keys = [k async for k in self.redis.scan_iter(match=f"gw:c:{device}:{task or '*'}", count=1000)]
        return await self.redis.delete(*keys) if keys else 0

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def close(self) -> None:
        await self.redis.aclose()


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
