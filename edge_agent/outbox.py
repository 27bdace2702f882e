"""A durable local queue of usage reports (SQLite): no usage is lost across outages or restarts.

Every served answer adds one row (task, responses=1, help_requests=0|1, offline_help=0|1) to the
task's open *batch*; the batch id is the idempotency key of the report that will carry it, and
the answer's Assist names it as its `report_key` (the gateway counts the help it saw for that
report: collab.budget). An answer takes its batch with `begin` before it calls the cloud and
adds its row with `add`; `flush` closes the open batches (new answers start new ones), sends
each closed batch that has no answer still in flight with one `report_usage`, and deletes it once
the cloud acknowledged it. A failed report leaves the batch as it is: the next flush, in this
process or after a restart, sends the same rows with the same key, so the gateway meters a report
that was applied but whose acknowledgement was lost only once. Exactly-once as long as the gateway
remembers the key. A batch's report never leaves before the Assist calls that name it returned.

`offline_help` marks a help request whose Assist never reached the gateway (unreachable, or the
cloud disabled): the gateway cannot have seen it, and counts it once from the report.
`report_usage(..., idempotency_key=)` is `collab.gateway_client.GatewayCloud`'s extension of the
`collab.cloud.CloudClient` interface.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from collab.cloud import CloudClient, CloudRefused, CloudUnavailable, Telemetry

log = logging.getLogger("edge_agent")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    responses INTEGER NOT NULL,
    help_requests INTEGER NOT NULL,
    offline_help INTEGER NOT NULL,
    created_at REAL NOT NULL,
    batch TEXT NOT NULL  -- idempotency key of the report carrying this row
)
"""


@dataclass(frozen=True)
class FlushResult:
    sent_rows: int
    pending_rows: int
    telemetry: dict[str, Telemetry]  # task -> what the cloud answered to its report


class UsageOutbox:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one connection, shared by the request and flush threads
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a row survives a power cut once add() returns
        self._db.execute(_SCHEMA)
        self._open: dict[str, str] = {}  # task -> the batch new answers join (batches on disk are closed)
        self._in_flight: Counter[str] = Counter()  # batch -> answers begun, row not added yet

    def begin(self, task: str) -> str:
        """Reserve a place in the task's open batch for one answer: its Assist's report_key."""
        with self._lock:
            batch = self._open.setdefault(task, uuid.uuid4().hex)
            self._in_flight[batch] += 1
            return batch

    def add(self, task: str, responses: int, help_requests: int, offline_help: int = 0,
            batch: str | None = None) -> None:
        """Queue a row in `batch` (from `begin`, which it completes) or in the task's open batch."""
        with self._lock:
            if batch is None:
                batch = self._open.setdefault(task, uuid.uuid4().hex)
            else:
                self._release(batch)
            self._db.execute(
                "INSERT INTO usage (task, responses, help_requests, offline_help, created_at, batch) "
                "VALUES (?, ?, ?, ?, ?, ?)", (task, responses, help_requests, offline_help, time.time(), batch))

    def cancel(self, batch: str) -> None:
        """An answer that `begin` counted failed before it had a row to add."""
        with self._lock:
            self._release(batch)

    def _release(self, batch: str) -> None:
        self._in_flight[batch] -= 1
        if self._in_flight[batch] <= 0:
            del self._in_flight[batch]

    def pending(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM usage").fetchone()[0]

    def totals(self) -> dict[str, tuple[int, int]]:
        """task -> (responses, help_requests) still waiting to be sent."""
        with self._lock:
            rows = self._db.execute(
                "SELECT task, SUM(responses), SUM(help_requests) FROM usage GROUP BY task"
            ).fetchall()
        return {task: (int(r), int(h)) for task, r, h in rows}

    def flush(self, cloud: CloudClient) -> FlushResult:
        """Send what is pending, one report per closed batch with nothing in flight; keep what
        could not be delivered."""
        with self._lock:
            self._open.clear()  # close the open batches: answers from now on start new ones
            batches = [row for row in self._db.execute(
                "SELECT batch, task, SUM(responses), SUM(help_requests), SUM(offline_help), COUNT(*) "
                "FROM usage GROUP BY batch, task ORDER BY MIN(id)").fetchall() if row[0] not in self._in_flight]
        sent, telemetry = 0, {}
        for key, task, responses, help_requests, offline, n_rows in batches:
            try:
                t = cloud.report_usage(task, int(responses), int(help_requests), idempotency_key=key,
                                       offline_help=int(offline))
            except (CloudUnavailable, CloudRefused) as exc:
                log.warning("usage report for %s kept for later: %s", task, exc)
                continue
            except Exception:  # e.g. a rejected API key: loud, and the rows stay queued
                log.exception("usage report for %s failed; kept for later", task)
                continue
            with self._lock:
                self._db.execute("DELETE FROM usage WHERE batch = ?", (key,))
            sent += n_rows
            if t is not None:
                telemetry[task] = t
        return FlushResult(sent, self.pending(), telemetry)

    def close(self) -> None:
        with self._lock:
            self._db.close()
