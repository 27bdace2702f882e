"""The store interface and the records it returns; the arithmetic is `collab.budget`.

Every metered call (report, assist decision, completion) is one atomic step in the store: read
the task policy and the device's counters, apply `collab.budget`, write, and remember the answer
under the idempotency key `(device, key)` so that a retry is counted once and answered the same.

Help attribution (collab.budget): a fresh Assist decision adds its help to the *scope* of the
report it names, `(device, report_key)`; the report with that idempotency key reads its scope
(`seen`) and closes it. An Assist naming a closed scope, or none, goes to the counters directly
(`budget.late_help`). Replays add nothing (the remembered answer is returned first), so the
counts are exact under retries, replays and a step run again after a crash.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Protocol

from collab import budget as b

# device and task names (no ':'); \Z, not $: `$` also matches before a trailing newline
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


class UnknownTask(Exception):
    """No policy for this task: it is neither built in nor created by an admin."""


class StoreUnavailable(Exception):
    """The store cannot be reached (Redis down, SQLite locked too long): retry later."""


class KeyReused(Exception):
    """An idempotency key was reused for a different call."""


@dataclass(frozen=True)
class Snapshot:
    """The budget of one (device, task) right after a metered call (or a read)."""

    device: str
    task: str
    counters: b.Counters
    tau_ppm: int  # tau in force after the call
    mode: str
    burst_ppm: int
    allowed: bool = True  # assist: was it allowed
    replayed: bool = False  # this answers a retry: nothing was counted
    # report: (responses believed -- at most the claim bucket, collab.budget.claim --, help as the
    # gateway counts it, help the device reported, tau_ppm in force before the report: the tau
    # those responses were budgeted at)
    report: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class Completion:
    completion: str
    prompt_tokens: int
    completion_tokens: int
    backend: str
    replayed: bool = False

    def to_json(self) -> str:
        return json.dumps([self.completion, self.prompt_tokens, self.completion_tokens, self.backend])

    @classmethod
    def from_json(cls, text: str | bytes, replayed: bool) -> Completion:
        completion, pt, ct, backend = json.loads(text)
        return cls(completion, int(pt), int(ct), backend, replayed)


def subject_digest(example_id: str) -> str:
    """What a remembered Assist answer keeps of its example id: it is only compared on a retry,
    so 128 bits of SHA-256 are stored instead of the device's text ("" stays "")."""
    return hashlib.sha256(example_id.encode()).hexdigest()[:32] if example_id else ""


def snapshot(device: str, task: str, c: b.Counters, p: b.Policy, **kw) -> Snapshot:
    return Snapshot(device, task, c, b.tau_at(p.schedule, c.responses), p.mode, p.burst_ppm, **kw)


def encode(op: str, s: Snapshot, subject: str = "") -> str:
    """The remembered answer of a metered call; budget.lua writes the same JSON shape.

    `subject` (assist: `subject_digest` of the example id) must match on a retry, so a key
    reused for another question fails loudly instead of replaying a stale answer."""
    return json.dumps(
        {"op": op, "task": s.task, "subject": subject, "allowed": s.allowed, "c": list(_values(s.counters)),
         "tau": s.tau_ppm, "mode": s.mode, "burst": s.burst_ppm,
         "report": list(s.report) if s.report else None}
    )


def decode(device: str, op: str, task: str, text: str | bytes, replayed: bool, subject: str = "") -> Snapshot:
    d = json.loads(text)
    if d["op"] != op or d["task"] != task or d["subject"] != subject:
        raise KeyReused(f"idempotency key already used for another call ({d['op']} on task {d['task']!r}"
                        f"{', another example' if d['subject'] != subject else ''})")
    report = tuple(int(x) for x in d["report"]) if d.get("report") else None
    return Snapshot(device, task, b.Counters(*(int(x) for x in d["c"])), int(d["tau"]), d["mode"],
                    int(d["burst"]), bool(d["allowed"]), replayed, report)


def _values(c: b.Counters) -> tuple[int, ...]:
    return tuple(getattr(c, f) for f in b.FIELDS)


def policy_to_json(p: b.Policy) -> dict:
    return {"schedule": [list(s) for s in p.schedule], "mode": p.mode, "burst_ppm": p.burst_ppm,
            "window": p.window}


def policy_from_json(d: dict) -> b.Policy:
    return b.Policy(tuple((int(s), int(t)) for s, t in d["schedule"]), d["mode"], int(d["burst_ppm"]),
                    int(d["window"]))


class Store(Protocol):
    async def seed_policies(self, policies: dict[str, b.Policy]) -> None:
        """Create the policies of tasks that have none (never overwrites an admin's change)."""

    async def set_policy(self, task: str, policy: b.Policy) -> None: ...

    async def policies(self) -> dict[str, b.Policy]: ...

    async def report(self, device: str, task: str, responses: int, help_requests: int, key: str,
                     offline_help: int = 0) -> Snapshot:
        """Count a report; its help is `budget.report_help(seen in scope `key`, help_requests,
        offline_help)`."""

    async def assist(self, device: str, task: str, key: str, subject: str = "", help_requests: int = 1,
                     report_key: str = "") -> Snapshot:
        """Decide and count one Assist serving `help_requests` for the report `report_key` (or
        replay the decision of an earlier call with this key about the same `subject`, the
        `subject_digest` of the example id)."""

    async def completion(self, device: str, key: str) -> Completion | None:
        """The completion already served for this key, if any."""

    async def complete(self, device: str, task: str, key: str, done: Completion) -> Completion:
        """Remember the completion for this key and count its tokens, unless one is already
        remembered (a concurrent retry): then return that one and count nothing."""

    async def get(self, device: str, task: str) -> Snapshot: ...

    async def budgets(self, device: str = "", task: str = "") -> list[Snapshot]: ...

    async def reset(self, device: str, task: str = "") -> int: ...

    async def close(self) -> None: ...
