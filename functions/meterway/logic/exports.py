"""Export jobs: what a request may ask for, the files' names and columns, and how cells are
written so that a spreadsheet never runs one as a formula."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from meterway.errors import InvalidRequest
from meterway.logic.keys import utc_iso
from meterway.logic.rollups import COUNTERS, Granularity, floor
from meterway.logic.usage import TOKEN_FIELDS
from meterway.logic.windows import Window

# Files and job records live as long as the bucket's lifecycle keeps exports.
EXPORT_RETENTION = timedelta(days=7)

REQUEST_COLUMNS: tuple[str, ...] = (
    "request_id",
    "created_at",
    "account_id",
    "key_id",
    "key_name",
    "member",
    "model",
    "provider",
    "endpoint",
    "streamed",
    "status",
    *TOKEN_FIELDS,
    "cost_usd",
    "price_input_mtok",
    "price_output_mtok",
    "price_cache_read_mtok",
    "price_cache_write_5m_mtok",
    "price_cache_write_1h_mtok",
    "usage_estimated",
    "latency_ms",
    "ttft_ms",
    "user",
    "app",
    "finish_reason",
    "error_code",
    "upstream_status",
)
# The rollups' own counters, in their order: the activity file is the rollups, bucket by bucket.
ACTIVITY_COLUMNS: tuple[str, ...] = ("bucket_start", "granularity", "group_by", "group", "name", *COUNTERS)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ExportCreate(BaseModel):
    """``POST /api/exports``."""

    kind: Literal["requests", "activity"]
    format: Literal["csv", "pdf"] = "csv"
    start: str | None = Field(default=None, max_length=40)
    end: str | None = Field(default=None, max_length=40)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    key: str | None = Field(default=None, min_length=1, max_length=64)
    group_by: Literal["model", "key", "member"] | None = None
    granularity: Literal["hour", "day", "month"] | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> ExportCreate:
        if self.kind == "requests" and (self.format != "csv" or self.group_by or self.granularity):
            raise ValueError("a requests export is CSV, one row per request, without group_by or granularity")
        if self.kind == "activity" and (self.model or self.key):
            raise ValueError("an activity export covers every model and key; filter a requests export instead")
        return self


def cell(value: Any) -> Any:
    """A CSV cell: numbers stay numbers; text that a spreadsheet would run as a formula gets a
    leading apostrophe (OWASP's advice for CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def request_row(item: dict[str, Any]) -> list[Any]:
    prices = item.get("prices") or {}
    values = {**item, **{f"price_{name}": Decimal(str(rate)) for name, rate in prices.items()}}
    if "cost_usd" in values:
        values["cost_usd"] = Decimal(str(values["cost_usd"]))
    return [cell(values.get(column)) for column in REQUEST_COLUMNS]


def csv_text(rows: Iterable[list[Any]]) -> str:
    """RFC 4180: comma separated, CRLF line ends, quotes doubled, fields quoted when needed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue()


def window_part(window: Window) -> tuple[str, str]:
    """The window in a file name: dates when it is whole days (end inclusive, as asked), else UTC
    minutes."""
    if window.start == floor(window.start, "day") and window.end == floor(window.end, "day"):
        return window.start.strftime("%Y-%m-%d"), (window.end - timedelta(days=1)).strftime("%Y-%m-%d")
    return window.start.strftime("%Y-%m-%dT%H%MZ"), window.end.strftime("%Y-%m-%dT%H%MZ")


def filename(request: ExportCreate, window: Window) -> str:
    start, end = window_part(window)
    if request.kind == "requests":
        return f"usage-{start}_{end}.csv"
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
        "group_by": (request.group_by or "model") if request.kind == "activity" else None,
        "granularity": activity_granularity(request, window) if request.kind == "activity" else None,
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
