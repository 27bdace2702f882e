"""The embedded budget store: one SQLite file; each metered call atomic, commits grouped.

One writer thread owns the connection. It takes the calls queued since its last commit (up to
`MAX_BATCH`), runs them one after the other inside one `BEGIN IMMEDIATE` transaction, each in its
own SAVEPOINT (a call that fails -- unknown task, reused key -- is rolled back alone), commits
once, and only then answers the callers: group commit, one fsync for many calls. Each call's
read-decide-write is atomic (the write lock is held from before the first read; calls run
sequentially), also against other gateway processes on the same file. WAL with
`synchronous=FULL`: an acknowledged call survives a crash of the gateway process or the machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
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
CREATE TABLE IF NOT EXISTS scopes (
  device TEXT NOT NULL, key TEXT NOT NULL, help INTEGER NOT NULL, closed INTEGER NOT NULL,
  expires REAL NOT NULL, PRIMARY KEY (device, key));
""".format(fields=", ".join(f"{f} INTEGER NOT NULL" for f in b.FIELDS))
log = logging.getLogger("cloud_gateway")
PRUNE_EVERY = 1000  # remembered answers written between two deletions of the expired ones
MAX_BATCH = 256  # calls per commit


class SqliteStore:
    def __init__(self, path: str | Path, limits: b.Limits, idempotency_ttl_s: float = 86400.0,
                 clock: Callable[[], float] = time.time):
        self.path = str(path)
        self.limits, self.clock = limits, clock
        self.ttl = idempotency_ttl_s
        self._writes = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()  # (fn, args, future, loop) | None = stop
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(target=self._writer, name="sqlite-store", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise StoreUnavailable(f"sqlite store {self.path}: {self._open_error}")

    def _open(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            _private_files(Path(self.path))
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        have = {row[1] for row in db.execute("PRAGMA table_info(counters)")}
        for f in b.FIELDS:  # a file from before a counter was added: append it (FIELDS only grows at its end)
            if f not in have:
                db.execute(f"ALTER TABLE counters ADD COLUMN {f} INTEGER NOT NULL DEFAULT 0")
        return db

    async def _run(self, fn, *args):
        """Run fn(db, *args) atomically on the writer thread; returns once it is committed."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((fn, args, future, loop))
        return await future

    def _writer(self) -> None:
        try:
            db = self._open()
        except sqlite3.Error as exc:
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH and batch[-1] is not None and not self._queue.empty():
                batch.append(self._queue.get())
            if batch[-1] is None:
                stopping = True
                batch.pop()
            if batch:
                self._commit(db, batch)
        db.close()

    def _commit(self, db: sqlite3.Connection, batch: list) -> None:
        results = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for fn, args, _, _ in batch:
                db.execute("SAVEPOINT call")
                try:
                    results.append((True, fn(db, *args)))
                    db.execute("RELEASE call")
                except Exception as exc:  # noqa: BLE001 -- delivered to that caller only
                    db.execute("ROLLBACK TO call")
                    db.execute("RELEASE call")
                    results.append((False, exc))
            db.execute("COMMIT")
        except sqlite3.Error as exc:  # locked by another process for > 30 s, disk I/O: nothing committed
            if db.in_transaction:
                db.execute("ROLLBACK")
            results = [(False, StoreUnavailable(f"sqlite store {self.path}: {exc}"))] * len(batch)
        for (_, _, future, loop), (ok, value) in zip(batch, results):
            loop.call_soon_threadsafe(_settle, future, ok, value)

    # -- policies ---------------------------------------------------------------------------------
    async def seed_policies(self, policies: dict[str, b.Policy]) -> None:
        rows = [(t, json.dumps(policy_to_json(p))) for t, p in policies.items()]
        await self._run(lambda db: db.executemany(
            "INSERT OR IGNORE INTO policies VALUES (?, ?)", rows))

    async def set_policy(self, task: str, policy: b.Policy) -> None:
        row = (task, json.dumps(policy_to_json(policy)))
        await self._run(lambda db: db.execute(
            "INSERT OR REPLACE INTO policies VALUES (?, ?)", row))

    async def policies(self) -> dict[str, b.Policy]:
        rows = await self._run(lambda db: db.execute("SELECT task, policy FROM policies").fetchall())
        return {t: policy_from_json(json.loads(p)) for t, p in rows}

    # -- metered calls ----------------------------------------------------------------------------
    async def report(self, device, task, responses, help_requests, key, offline_help=0) -> Snapshot:
        def step(db, c: b.Counters, p: b.Policy) -> Snapshot:
            seen, _ = self._scope(db, device, key)
            counted = b.report_help(seen, help_requests, offline_help)
            tau_before = b.tau_at(p.schedule, c.responses)
            believed, c = b.bounded_report(c, p, self.limits, self._now_ms(), responses, counted, help_requests)
            db.execute("INSERT OR REPLACE INTO scopes VALUES (?, ?, ?, 1, ?)",
                       (device, key, seen, time.time() + self.ttl))
            return snapshot(device, task, c, p, report=(believed, counted, help_requests, tau_before))

        return await self._run(self._metered, device, task, key, "report", step)

    async def assist(self, device, task, key, subject="", help_requests=1, report_key="") -> Snapshot:
        def step(db, c: b.Counters, p: b.Policy) -> Snapshot:
            allowed, c = b.bounded_assist(c, p, self.limits, self._now_ms(), help_requests)
            seen, closed = self._scope(db, device, report_key) if report_key else (0, True)
            if closed:
                c = b.late_help(c, help_requests)
            else:
                db.execute("INSERT OR REPLACE INTO scopes VALUES (?, ?, ?, 0, ?)",
                           (device, report_key, seen + help_requests, time.time() + self.ttl))
            return snapshot(device, task, c, p, allowed=allowed)

        return await self._run(self._metered, device, task, key, "assist", step, subject)

    def _metered(self, db, device, task, key, op, step, subject="") -> Snapshot:
        prior = self._remembered(db, device, key)
        if prior is not None:
            return decode(device, op, task, prior, replayed=True, subject=subject)
        c, p = self._load(db, device, task)
        s = step(db, c, p)
        db.execute(f"INSERT OR REPLACE INTO counters VALUES (?, ?, {', '.join('?' * len(b.FIELDS))})",
                   (device, task, *(getattr(s.counters, f) for f in b.FIELDS)))
        self._remember(db, device, key, encode(op, s, subject))
        return s

    async def completion(self, device, key) -> Completion | None:
        def read(db):
            prior = self._remembered(db, device, "done:" + key)
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

        return await self._run(step)

    # -- reads and admin --------------------------------------------------------------------------
    async def get(self, device, task) -> Snapshot:
        def read(db):
            c, p = self._load(db, device, task)
            return snapshot(device, task, c, p)

        return await self._run(read)

    async def budgets(self, device="", task="") -> list[Snapshot]:
        def read(db):
            policies = {t: policy_from_json(json.loads(p))
                        for t, p in db.execute("SELECT task, policy FROM policies")}
            rows = db.execute(
                "SELECT * FROM counters WHERE (? = '' OR device = ?) AND (? = '' OR task = ?) "
                "ORDER BY device, task", (device, device, task, task)).fetchall()
            return [snapshot(r[0], r[1], b.Counters(*r[2:]), policies[r[1]]) for r in rows
                    if r[1] in policies]

        return await self._run(read)

    async def reset(self, device, task="") -> int:
        def step(db):
            return db.execute("DELETE FROM counters WHERE device = ? AND (? = '' OR task = ?)",
                              (device, task, task)).rowcount

        return await self._run(step)

    async def close(self) -> None:
        self._queue.put(None)  # the writer finishes what is queued before it, then closes
        await asyncio.to_thread(self._thread.join)

    # -- helpers (inside a transaction) -----------------------------------------------------------
    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _load(self, db, device, task) -> tuple[b.Counters, b.Policy]:
        row = db.execute("SELECT policy FROM policies WHERE task = ?", (task,)).fetchone()
        if row is None:
            raise UnknownTask(task)
        p = policy_from_json(json.loads(row[0]))
        c = db.execute("SELECT * FROM counters WHERE device = ? AND task = ?", (device, task)).fetchone()
        return (b.Counters(*c[2:]) if c else b.fresh(p)), p

    def _scope(self, db, device, key) -> tuple[int, bool]:
        """(help seen so far for the report `key`, whether that report was already counted)."""
        row = db.execute("SELECT help, closed, expires FROM scopes WHERE device = ? AND key = ?",
                         (device, key)).fetchone()
        return (row[0], bool(row[1])) if row and row[2] > time.time() else (0, False)

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
            db.execute("DELETE FROM scopes WHERE expires <= ?", (now,))


def _private_files(path: Path) -> None:
    """The store file owner-only (0600) before SQLite opens it: it holds every device's budget and
    remembered answers. SQLite creates the -wal and -shm files with the database file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        pass
    for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if f.exists() and f.stat().st_mode & 0o077:
            log.warning("sqlite store %s was readable by others (mode %o): now 0600", f, f.stat().st_mode & 0o777)
            f.chmod(0o600)


def _settle(future: asyncio.Future, ok: bool, value) -> None:
    if future.done():  # the caller gave up (deadline, cancellation); the call is committed anyway
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
