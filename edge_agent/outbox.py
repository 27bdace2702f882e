"""A durable local queue of usage reports (SQLite): no usage is lost across outages or restarts.

Every served answer adds one row (task, responses=1, help_requests=0|1). `flush` sends the pending
rows, summed per task, with one `report_usage` per task, and deletes exactly the rows it sent once
the cloud acknowledged them. A failed report leaves its rows for the next flush.

Delivery is at-least-once: if the gateway applied a report but the acknowledgement was lost, the
rows are sent again (the `report_usage` interface carries no idempotency key).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from collab.cloud import CloudClient, CloudRefused, CloudUnavailable, Telemetry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    responses INTEGER NOT NULL,
    help_requests INTEGER NOT NULL,
    created_at REAL NOT NULL
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
        """Send what is pending, one report per task; keep what could not be delivered."""
        with self._lock:
            high = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM usage").fetchone()[0]
            groups = self._db.execute(
                "SELECT task, SUM(responses), SUM(help_requests), COUNT(*) FROM usage "
                "WHERE id <= ? GROUP BY task", (high,)
            ).fetchall()
        sent, telemetry = 0, {}
        for task, responses, help_requests, n_rows in groups:
            try:
                t = cloud.report_usage(task, int(responses), int(help_requests))
            except (CloudUnavailable, CloudRefused):
                continue  # stays queued; the next flush retries it
            with self._lock:
                self._db.execute("DELETE FROM usage WHERE task = ? AND id <= ?", (task, high))
            sent += n_rows
            if t is not None:
                telemetry[task] = t
        return FlushResult(sent, self.pending(), telemetry)

    def close(self) -> None:
        with self._lock:
            self._db.close()
