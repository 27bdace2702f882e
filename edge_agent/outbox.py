"""A durable local queue of usage reports (SQLite): no usage is lost across outages or restarts.

Every served answer adds one row (task, responses=1, help_requests=0|1). `flush` seals the pending
rows of each task into a batch with a fresh idempotency key (stored with the rows), sends the
batch's sums with one `report_usage`, and deletes the batch once the cloud acknowledged it. A
failed report leaves the batch sealed: the next flush, in this process or after a restart, sends
the same rows with the same key, so the gateway meters a report that was applied but whose
acknowledgement was lost only once. Exactly-once as long as the gateway remembers the key.

`report_usage(..., idempotency_key=)` is `collab.gateway_client.GatewayCloud`'s extension of the
`collab.cloud.CloudClient` interface.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
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
    created_at REAL NOT NULL,
    batch TEXT  -- idempotency key of the report carrying this row; NULL until sealed
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

    def add(self, task: str, responses: int, help_requests: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO usage (task, responses, help_requests, created_at) VALUES (?, ?, ?, ?)",
                (task, responses, help_requests, time.time()),
            )

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
        """Send what is pending, one report per (task, batch); keep what could not be delivered."""
        with self._lock:
            unsealed = self._db.execute(
                "SELECT DISTINCT task FROM usage WHERE batch IS NULL").fetchall()
            for (task,) in unsealed:
                self._db.execute("UPDATE usage SET batch = ? WHERE task = ? AND batch IS NULL",
                                 (uuid.uuid4().hex, task))
            batches = self._db.execute(
                "SELECT batch, task, SUM(responses), SUM(help_requests), COUNT(*) FROM usage "
                "GROUP BY batch, task ORDER BY MIN(id)").fetchall()
        sent, telemetry = 0, {}
        for key, task, responses, help_requests, n_rows in batches:
            try:
                t = cloud.report_usage(task, int(responses), int(help_requests),
                                       idempotency_key=key)
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
