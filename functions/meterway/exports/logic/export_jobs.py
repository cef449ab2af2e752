"""Export jobs: what a request may ask for, the window it covers, and the file it makes."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from meterway.analytics.logic.windows import Window
from meterway.analytics.models import GroupBy, Metric
from meterway.core.clock import Granularity, floor, label, utc_iso
from meterway.core.errors import InvalidRequest, StorageError
from meterway.core.request_models import ClientTimeText, RequestBody
from meterway.exports.dal.export_jobs import ExportJobStore, slice_rows_attribute
from meterway.exports.dal.job_queue import JobQueue
from meterway.ledger.attribution import NAME_LIMIT
from meterway.ledger.dal.ledger_store import LedgerQuery

# Files and job records live as long as the bucket's lifecycle keeps exports.
EXPORT_RETENTION = timedelta(days=7)


class _ExportBody(RequestBody):
    start: ClientTimeText | None = None
    end: ClientTimeText | None = None


# A user or app as a filter names it: the record's value (``(none)``: records that name none).
NamedFilter = Annotated[str | None, Field(default=None, min_length=1, max_length=NAME_LIMIT)]


class RequestsExport(_ExportBody):
    """A CSV of one row per request; ``model``, ``key``, ``user`` and ``app`` filter it."""

    kind: Literal["requests"]
    format: Literal["csv"] = "csv"
    model: str | None = Field(default=None, min_length=1, max_length=200)
    key: str | None = Field(default=None, min_length=1, max_length=64)
    user: NamedFilter = None
    app: NamedFilter = None


class ActivityExport(_ExportBody):
    """Every model and key, per bucket and group: a CSV, or a PDF report. With ``metric``, that
    metric by the grouping ("Tokens by API key"): a CSV of its counters only, or a PDF of a summary
    page for every group, then a page per group."""

    kind: Literal["activity"]
    format: Literal["csv", "pdf"] = "csv"
    group_by: GroupBy | None = None
    granularity: Literal["hour", "day", "month"] | None = None
    metric: Metric | None = Field(default=None, description="cost, tokens or requests: that metric by group_by")


# ``POST /api/exports``: the kind says which fields the body may have, so the document states it.
ExportBody = Annotated[RequestsExport | ActivityExport, Field(discriminator="kind")]


def export_request(body: RequestsExport | ActivityExport) -> ExportCreate:
    return ExportCreate.model_validate(body.model_dump())


class ExportCreate(RequestBody):
    """An export job's request, whichever its kind."""

    kind: Literal["requests", "activity"]
    format: Literal["csv", "pdf"] = "csv"
    start: ClientTimeText | None = None
    end: ClientTimeText | None = None
    model: str | None = Field(default=None, min_length=1, max_length=200)
    key: str | None = Field(default=None, min_length=1, max_length=64)
    user: NamedFilter = None
    app: NamedFilter = None
    group_by: GroupBy | None = None
    granularity: Literal["hour", "day", "month"] | None = None
    metric: Metric | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> ExportCreate:
        if self.kind == "requests" and (self.format != "csv" or self.group_by or self.granularity or self.metric):
            raise ValueError("a requests export is CSV, one row per request, without group_by, granularity or metric")
        if self.kind == "activity" and (self.model or self.key or self.user or self.app):
            raise ValueError(
                "an activity export covers every model, key, user and app; filter a requests export instead"
            )
        return self


def job_query(job: dict[str, Any], start: str, end: str) -> LedgerQuery:
    """The ledger records of a requests export's filters created in [start, end]."""
    return LedgerQuery(
        job["account_id"], start, end, job.get("key_id"), job.get("model"), user=job.get("user"), app=job.get("app")
    )


def window_part(window: Window) -> tuple[str, str]:
    """The window in a file name: dates when it is whole days (end inclusive, as asked), else UTC
    minutes."""
    if window.start == floor(window.start, "day") and window.end == floor(window.end, "day"):
        return label(window.start, "day"), label(window.end - timedelta(days=1), "day")
    return _file_minute(window.start), _file_minute(window.end)


def _file_minute(moment: datetime) -> str:
    return label(moment, "minute").replace(":", "") + "Z"


def filename(request: ExportCreate, window: Window) -> str:
    start, end = window_part(window)
    if request.kind == "requests":
        return f"usage-{start}_{end}.csv"
    if request.metric:
        return f"{request.metric}-by-{request.group_by or 'model'}-{start}_{end}.{request.format}"
    if request.format == "pdf":
        return f"usage-report-{start}_{end}.pdf"
    return f"activity-{request.group_by or 'model'}-{start}_{end}.csv"


def activity_granularity(request: ExportCreate, window: Window) -> Granularity:
    if request.granularity:
        return request.granularity
    span = window.end - window.start
    return "hour" if span <= timedelta(days=2) else "day" if span <= timedelta(days=93) else "month"


def check_retention(window: Window, now: datetime, retention_days: int) -> None:
    """A window reaching past the ledger's retention would silently miss rows: refuse it."""
    if retention_days > 0 and window.start < now - timedelta(days=retention_days):
        raise InvalidRequest(
            f"Records older than {retention_days} days are not kept: start the window later.", code="invalid_window"
        )


def new_job(account_id: str, request: ExportCreate, window: Window, now: datetime) -> dict[str, Any]:
    job_id = "exp_" + uuid.uuid4().hex
    name = filename(request, window)
    job: dict[str, Any] = {
        "job_id": job_id,
        "account_id": account_id,
        "kind": request.kind,
        "format": request.format,
        "start": window.start_iso,
        "end": window.end_iso,
        "model": request.model,
        "key_id": request.key,
        "user": request.user,
        "app": request.app,
        "group_by": (request.group_by or "model") if request.kind == "activity" else None,
        "granularity": activity_granularity(request, window) if request.kind == "activity" else None,
        "metric": request.metric,
        "status": "queued",
        "rows": 0,
        "attempts": 0,
        "filename": name,
        "object_key": f"exports/{account_id}/{job_id}/{name}",
        "created_at": utc_iso(now),
        "updated_at": utc_iso(now),
        "expires_at": int((now + EXPORT_RETENTION).timestamp()),
    }
    return {name: value for name, value in job.items() if value is not None}


def start_export(
    jobs: ExportJobStore, queue: JobQueue, account_id: str, request: ExportCreate, window: Window, now: datetime
) -> dict[str, Any]:
    """Store a new job and queue it for the worker. A job that cannot be queued is marked failed
    (it would otherwise stay ``queued`` for ever) and the error raised."""
    job = new_job(account_id, request, window, now)
    jobs.create(job)
    try:
        queue.send({"job_id": job["job_id"]})
    except StorageError:
        attempt = jobs.claim(job["job_id"], utc_iso(now))
        if attempt:
            jobs.finish(job["job_id"], attempt, {"status": "failed", "error": "The job could not be queued."})
        raise
    return job


def rows_written(job: dict[str, Any]) -> int:
    """The rows a job has written so far: while a fanned-out job runs, its slices count their own."""
    if job["status"] == "running" and "cuts" in job:
        return sum(int(job.get(slice_rows_attribute(index), 0)) for index in range(len(job["cuts"]) - 1))
    return int(job.get("rows", 0))
