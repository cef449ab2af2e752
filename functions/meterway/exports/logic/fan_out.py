"""A large request export written by several workers at once, into one file.

The job's own worker plans (``run_export.run_job``): it cuts the window into time slices
(``slice_plan``), starts one multipart upload, keeps the cuts and the upload on the job, and queues
one message per slice.

A slice's worker writes the CSV rows of its slice as a run of parts numbered from the slice's
own base (slice ``i`` from ``i × PARTS_PER_SLICE + 1``), so that the parts sort in slice order
whoever finishes first; slice 0 starts with the header. S3 wants every part but the file's last
to be 5 MiB or more: a run holds its tail back until it can end on such a part, and a slice too
small for one altogether goes on through the next slices until it is not (or the window ends).
The slices it went through are covered by its run, and their own runs are left out.

Each worker records its run (its parts, rows, and the last slice it covers) on the job; the one
that records the last run completes the upload with the runs in slice order. The file is byte for
byte the one a single worker writes: the header once, then every record in ``created_sk`` order,
each slice holding a range of that order.

Exactly once, whatever crashes:
- a slice written again (its worker died or failed, or its message came twice) uploads the same
  part numbers again: S3 keeps the last upload of a number and joins only the parts the recorded
  run names, each checked against its ETag, so no row comes twice and none goes missing;
- a run is recorded once (a condition on its attribute); the upload is completed by whoever
  records the last run, or by a retry of it that finds them all recorded; the job becomes
  ``succeeded`` only from ``running``, so once;
- a slice that fails on its last delivery fails the job and aborts the upload;
- a newer attempt at the job (the job's own message delivered again) plans anew, with a new
  upload: the old attempt's slices find another attempt id on the job and do nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from meterway.core.clock import utc_iso
from meterway.core.observability import logger
from meterway.exports.dal.export_files import MAX_PART_NUMBER
from meterway.exports.dal.export_jobs import slice_attribute
from meterway.exports.logic import slice_plan
from meterway.exports.logic.attempts import Attempt, ExportDeps, Superseded, failure_reason
from meterway.exports.logic.export_jobs import job_query
from meterway.exports.logic.request_csv import HEADER, write_request_rows
from meterway.ledger.dal.ledger_store import LedgerQuery

PARTS_PER_SLICE = MAX_PART_NUMBER // slice_plan.MAX_SLICES
CSV = "text/csv; charset=utf-8"


def slice_bounds(attempt: Attempt) -> list[datetime]:
    """Where the job's slices start and end: only the window's two ends when one worker writes it."""
    job, deps, window = attempt.job, attempt.deps, attempt.window
    if job["kind"] != "requests" or deps.slice_rows <= 0:
        return [window.start, window.end]
    counts = slice_plan.request_counts(deps.rollups, job, window, deps.clock())
    return slice_plan.cuts(window, counts, deps.slice_rows)


def start(attempt: Attempt, bounds: list[datetime]) -> str:
    """Start the upload, keep the plan on the job and queue its slices."""
    job, deps = attempt.job, attempt.deps
    upload_id = deps.files.start_upload(job["object_key"], CSV)
    try:
        cuts = [utc_iso(moment) for moment in bounds]
        if not deps.jobs.plan_slices(job["job_id"], attempt.attempt_id, upload_id, cuts, attempt.now()):
            raise Superseded
        deps.queue.send_batch(
            [slice_message(job["job_id"], attempt.attempt_id, index) for index in range(len(cuts) - 1)]
        )
    except Exception:
        deps.files.abort_upload(job["object_key"], upload_id)
        raise
    return "fanned out"


def slice_message(job_id: str, attempt_id: str, index: int) -> dict[str, Any]:
    return {"job_id": job_id, "attempt": attempt_id, "slice": index}


class SliceAttempt(Attempt):
    """The worker of one slice, within its job's attempt."""

    def __init__(self, job: dict[str, Any], attempt_id: str, deps: ExportDeps, index: int):
        super().__init__(job, attempt_id, deps)
        self.index = index
        self.slices = len(job["cuts"]) - 1

    def _report(self, rows: int, now: str, total: int | None = None) -> bool:
        return self.deps.jobs.slice_progress(self.job["job_id"], self.attempt_id, self.index, rows, now)

    def query(self, index: int) -> LedgerQuery:
        job, cuts = self.job, self.job["cuts"]
        return job_query(job, cuts[index], cuts[index + 1])


def run_slice(job_id: str, attempt_id: str, index: int, deps: ExportDeps, *, final_attempt: bool) -> str:
    """Write slice ``index`` of the job's attempt ``attempt_id`` once, and complete the file if it
    was the last; returns what happened. A failure is raised for a retry, unless this is the final
    attempt, which fails the job."""
    job = deps.jobs.get(job_id)
    if job is None or not _running(job, attempt_id):
        return "skipped"
    attempt = SliceAttempt(job, attempt_id, deps, index)
    recorded = slice_attribute(index) in job  # delivered again after its run was recorded
    try:
        if not recorded:
            count = deps.jobs.record_slice(job_id, attempt_id, index, write_run(attempt), attempt.now())
            recorded = True
            if count is not None and count < attempt.slices:
                return "slice written"
        return _complete_if_all_recorded(attempt)
    except Superseded:
        return "superseded"
    except Exception as exc:
        logger.warning(
            "export slice failed",
            extra={"job_id": job_id, "slice": index, "final": final_attempt, "reason": failure_reason(exc)},
        )
        if not final_attempt:
            raise
        return _give_up(attempt, failure_reason(exc), run_recorded=recorded)


def write_run(attempt: SliceAttempt) -> dict[str, Any]:
    """The slice's rows as a run of parts (going on through the next slices while it is too small
    to end a part); what the job records of it."""
    job, deps, index = attempt.job, attempt.deps, attempt.index
    first = index * PARTS_PER_SLICE + 1
    writer = deps.files.part_writer(job["object_key"], job["upload_id"], first, first + PARTS_PER_SLICE - 1)
    if index == 0:
        writer.write(HEADER)
    rows = 0
    for through in range(index, attempt.slices):
        query = attempt.query(through)
        rows = write_request_rows(
            deps.ledger, query, writer, attempt.progress, counted=rows, processes=deps.row_processes
        )
        if writer.long_enough:
            break
    return {"through": through, "rows": rows, "parts": writer.close()}


def _complete_if_all_recorded(attempt: SliceAttempt) -> str:
    job, deps = attempt.job, attempt.deps
    fresh = deps.jobs.get(job["job_id"])
    if fresh is None or not _running(fresh, attempt.attempt_id):
        return "skipped"
    runs = {index: fresh[slice_attribute(index)] for index in range(attempt.slices) if slice_attribute(index) in fresh}
    if len(runs) < attempt.slices:
        return "slice written"
    parts, rows = stitched(runs, attempt.slices)
    deps.files.complete_upload(job["object_key"], job["upload_id"], parts)
    done = {"status": "succeeded", "rows": rows, "updated_at": attempt.now(), "completed_at": attempt.now()}
    return "succeeded" if deps.jobs.finish(job["job_id"], attempt.attempt_id, done) else "skipped"


def stitched(runs: dict[int, dict[str, Any]], slices: int) -> tuple[list[dict[str, Any]], int]:
    """The file's parts in order, and its rows: from slice 0, each run, then the run of the slice
    after the last one it covers."""
    parts: list[dict[str, Any]] = []
    rows, index = 0, 0
    while index < slices:
        run = runs[index]
        parts += run["parts"]
        rows += run["rows"]
        index = run["through"] + 1
    return parts, rows


def _give_up(attempt: SliceAttempt, reason: str, *, run_recorded: bool) -> str:
    """The final delivery of a slice failed: the job fails and its upload goes. Not when the slice's
    run was recorded by another delivery meanwhile, which leaves the file to be completed."""
    job, deps = attempt.job, attempt.deps
    if run_recorded:
        failed = deps.jobs.finish(job["job_id"], attempt.attempt_id, {"status": "failed", "error": reason})
    else:
        failed = deps.jobs.fail_slice(job["job_id"], attempt.attempt_id, attempt.index, reason, attempt.now())
    if failed:
        deps.files.abort_upload(job["object_key"], job["upload_id"])
    return "failed" if failed else "skipped"


def _running(job: dict[str, Any] | None, attempt_id: str) -> bool:
    """Whether the job is fanned out and still run by this attempt."""
    return job is not None and job["status"] == "running" and job.get("attempt_id") == attempt_id and "cuts" in job
