"""One worker's attempt at an export job: what it works with, and its progress, reported only
while the job is still its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from meterway.accounts.dal.key_store import KeyStore
from meterway.analytics.dal.rollup_store import RollupStore
from meterway.analytics.logic.windows import Window
from meterway.core.clock import parse_utc_iso, utc_iso, utc_now
from meterway.exports.dal.export_files import FileStore
from meterway.exports.dal.export_jobs import ExportJobStore
from meterway.exports.dal.job_queue import JobQueue
from meterway.ledger.dal.ledger_store import LedgerStore

# A job's row count is written as its pages are, at most this often per worker: every page of
# 1,000 would be 50 writes a second for one item at the throughput exports aim at.
PROGRESS_INTERVAL = timedelta(seconds=1)


@dataclass
class ExportDeps:
    jobs: ExportJobStore
    ledger: LedgerStore
    rollups: RollupStore
    keys: KeyStore
    files: FileStore
    #: Where the slices of a fanned-out export are queued (the job's own queue).
    queue: JobQueue
    clock: Callable[[], datetime] = utc_now
    #: Rows a slice of a request export should hold at least; 0: one worker writes every export.
    slice_rows: int = 0
    #: Child processes turning a request export's ledger pages into CSV; 0: the worker's own.
    row_processes: int = 0


class Superseded(Exception):
    """Another attempt owns the job now (a duplicate delivery claimed it after us), or it ended."""


class Attempt:
    """One worker's attempt at a job: reports progress only while it still owns the job."""

    def __init__(self, job: dict[str, Any], attempt_id: str, deps: ExportDeps):
        self.job, self.attempt_id, self.deps = job, attempt_id, deps
        self._reported: datetime | None = None

    def progress(self, rows: int, total: int | None = None) -> None:
        """Note ``rows`` written (at most once per ``PROGRESS_INTERVAL``), and the ``total`` the job
        will write once it knows it (always noted at once: a progress bar waits for it); raises
        ``Superseded`` when the job is no longer this attempt's."""
        now = self.deps.clock()
        if total is None and self._reported is not None and now - self._reported < PROGRESS_INTERVAL:
            return
        self._reported = now
        if not self._report(rows, utc_iso(now), total):
            raise Superseded

    def _report(self, rows: int, now: str, total: int | None = None) -> bool:
        return self.deps.jobs.progress(self.job["job_id"], self.attempt_id, rows, now, total)

    @property
    def window(self) -> Window:
        return Window(parse_utc_iso(self.job["start"]), parse_utc_iso(self.job["end"]))

    def now(self) -> str:
        return utc_iso(self.deps.clock())


def failure_reason(exc: Exception) -> str:
    """What the job's record says about a failed attempt."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"The export could not be written: {message}"[:500]
