"""The embedded budget store: one SQLite file, each metered call one IMMEDIATE transaction.

`BEGIN IMMEDIATE` takes the write lock before reading, so read-decide-write is atomic even with
several gateway processes on one file. WAL with `synchronous=FULL`: a committed (acknowledged)
call survives a crash of the gateway process or the machine. Calls run on one worker thread
(SQLite serialises writers anyway) so the asyncio loop never blocks.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from collab import budget as b
from cloud_gateway.store.base import (
    Completion, Snapshot, StoreUnavailable, UnknownTask, decode, encode, policy_from_json, policy_to_json, snapshot,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS policies (task TEXT PRIMARY KEY, policy TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (
  device TEXT NOT NULL, task TEXT NOT NULL, {fields},
  PRIMARY KEY (device, task));
CREATE TABLE IF NOT EXISTS idempotency (
  device TEXT NOT NULL, key TEXT NOT NULL, answer TEXT NOT NULL, expires REAL NOT NULL,
  PRIMARY KEY (device, key));
CREATE INDEX IF NOT EXISTS idempotency_expires ON idempotency (expires);
""".format(fields=", ".join(f"{f} INTEGER NOT NULL" for f in b.FIELDS))
PRUNE_EVERY = 1000  # remembered answers written between two deletions of the expired ones


class SqliteStore:
    def __init__(self, path: str | Path, idempotency_ttl_s: float = 86400.0):
        self.path = str(path)
        self.ttl = idempotency_ttl_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._db: sqlite3.Connection | None = None
        self._writes = 0
        self._pool.submit(self._open).result()

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        self._db = db

    async def _run(self, fn, *args):
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except sqlite3.OperationalError as exc:  # locked by another process for > 30 s, disk I/O
            raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from None

    def _tx(self, fn, *args):
        """Run fn(db, ...) inside one IMMEDIATE transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(db, *args)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return out

    # -- policies ---------------------------------------------------------------------------------
    async def seed_policies(self, policies: dict[str, b.Policy]) -> None:
        rows = [(t, json.dumps(policy_to_json(p))) for t, p in policies.items()]
        await self._run(self._tx, lambda db: db.executemany(
            "INSERT OR IGNORE INTO policies VALUES (?, ?)", rows))

    async def set_policy(self, task: str, policy: b.Policy) -> None:
        row = (task, json.dumps(policy_to_json(policy)))
        await self._run(self._tx, lambda db: db.execute(
            "INSERT OR REPLACE INTO policies VALUES (?, ?)", row))

    async def policies(self) -> dict[str, b.Policy]:
        rows = await self._run(lambda: self._db.execute("SELECT task, policy FROM policies").fetchall())
        return {t: policy_from_json(json.loads(p)) for t, p in rows}

    # -- metered calls ----------------------------------------------------------------------------
    async def report(self, device, task, responses, help_requests, key) -> Snapshot:
        def step(c: b.Counters, p: b.Policy) -> Snapshot:
            c = b.report(c, p, responses, help_requests)
            return snapshot(device, task, c, p, report=(responses, help_requests))

        return await self._run(self._tx, self._metered, device, task, key, "report", step)

    async def assist(self, device, task, key, subject="") -> Snapshot:
        def step(c: b.Counters, p: b.Policy) -> Snapshot:
            allowed, c = b.assist(c, p)
            return snapshot(device, task, c, p, allowed=allowed)

        return await self._run(self._tx, self._metered, device, task, key, "assist", step, subject)

    def _metered(self, db, device, task, key, op, step, subject="") -> Snapshot:
        prior = self._remembered(db, device, key)
        if prior is not None:
            return decode(device, op, task, prior, replayed=True, subject=subject)
        c, p = self._load(db, device, task)
        s = step(c, p)
        db.execute(f"INSERT OR REPLACE INTO counters VALUES (?, ?, {', '.join('?' * len(b.FIELDS))})",
                   (device, task, *(getattr(s.counters, f) for f in b.FIELDS)))
        self._remember(db, device, key, encode(op, s, subject))
        return s

    async def completion(self, device, key) -> Completion | None:
        def read():
            prior = self._remembered(self._db, device, "done:" + key)
            return None if prior is None else Completion.from_json(prior, replayed=True)

        return await self._run(read)

    async def complete(self, device, task, key, done: Completion) -> Completion:
        def step(db):
            prior = self._remembered(db, device, "done:" + key)
            if prior is not None:
                return Completion.from_json(prior, replayed=True)
            self._remember(db, device, "done:" + key, done.to_json())
            db.execute("UPDATE counters SET tokens = tokens + ? WHERE device = ? AND task = ?",
                       (done.prompt_tokens + done.completion_tokens, device, task))
            return done

        return await self._run(self._tx, step)

    # -- reads and admin --------------------------------------------------------------------------
    async def get(self, device, task) -> Snapshot:
        def read(db):
            c, p = self._load(db, device, task)
            return snapshot(device, task, c, p)

        return await self._run(self._tx, read)

    async def budgets(self, device="", task="") -> list[Snapshot]:
        def read(db):
            policies = {t: policy_from_json(json.loads(p))
                        for t, p in db.execute("SELECT task, policy FROM policies")}
            rows = db.execute(
                "SELECT * FROM counters WHERE (? = '' OR device = ?) AND (? = '' OR task = ?) "
                "ORDER BY device, task", (device, device, task, task)).fetchall()
            return [snapshot(r[0], r[1], b.Counters(*r[2:]), policies[r[1]]) for r in rows
                    if r[1] in policies]

        return await self._run(self._tx, read)

    async def reset(self, device, task="") -> int:
        def step(db):
            return db.execute("DELETE FROM counters WHERE device = ? AND (? = '' OR task = ?)",
                              (device, task, task)).rowcount

        return await self._run(self._tx, step)

    async def close(self) -> None:
        def shut():
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(shut)
        self._pool.shutdown(wait=True)

    # -- helpers (inside a transaction) -----------------------------------------------------------
    def _load(self, db, device, task) -> tuple[b.Counters, b.Policy]:
        row = db.execute("SELECT policy FROM policies WHERE task = ?", (task,)).fetchone()
        if row is None:
            raise UnknownTask(task)
        p = policy_from_json(json.loads(row[0]))
        c = db.execute("SELECT * FROM counters WHERE device = ? AND task = ?", (device, task)).fetchone()
        return (b.Counters(*c[2:]) if c else b.fresh(p)), p

    def _remembered(self, db, device, key) -> str | None:
        row = db.execute("SELECT answer, expires FROM idempotency WHERE device = ? AND key = ?",
                         (device, key)).fetchone()
        return row[0] if row and row[1] > time.time() else None

    def _remember(self, db, device, key, answer: str) -> None:
        now = time.time()
        db.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?)", (device, key, answer, now + self.ttl))
        self._writes += 1
        if self._writes % PRUNE_EVERY == 0:
            db.execute("DELETE FROM idempotency WHERE expires <= ?", (now,))
