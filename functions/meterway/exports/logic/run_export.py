"""Running one export job: claim it, write its file, and end it as ``succeeded`` or ``failed``.

Each attempt writes the whole file again from the first row into a new upload, and the object
appears only when the upload completes: a retry never duplicates rows and a failure never leaves
a partial file behind a ``succeeded`` status. A request export of many records is instead fanned
out: this attempt plans it and queues its slices, which other workers write (``fan_out``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from meterway.analytics.logic import reports
from meterway.analytics.logic.windows import Window
from meterway.analytics.models import GROUP_NAMES, METRIC_COUNTERS, METRIC_FIELD, NO_MEMBER, Counters, records_of
from meterway.core.clock import Granularity, floor, step, utc_iso
from meterway.core.observability import logger
from meterway.exports.dal.export_files import FileWriter
from meterway.exports.logic import fan_out
from meterway.exports.logic.attempts import Attempt, ExportDeps, Superseded, failure_reason
from meterway.exports.logic.csv_format import ACTIVITY_COLUMNS, cell, csv_text
from meterway.exports.logic.export_jobs import job_query
from meterway.exports.logic.request_csv import HEADER, write_request_rows


def run_message(message: dict[str, Any], deps: ExportDeps, *, final_attempt: bool) -> str:
    """One message of the export queue: a job (``{"job_id"}``), or a slice of a fanned-out job
    (``{"job_id", "attempt", "slice"}``); returns what happened."""
    if "slice" in message:
        return fan_out.run_slice(
            message["job_id"], message["attempt"], int(message["slice"]), deps, final_attempt=final_attempt
        )
    return run_job(message["job_id"], deps, final_attempt=final_attempt)


def run_job(job_id: str, deps: ExportDeps, *, final_attempt: bool) -> str:
    """Run a job once; returns what happened. A failure that may pass is raised for a retry,
    unless this is the final attempt, which marks the job ``failed`` with the reason."""
    job = deps.jobs.get(job_id)
    if job is None or job["status"] in ("succeeded", "failed"):
        return "skipped"
    attempt_id = deps.jobs.claim(job_id, utc_iso(deps.clock()))
    if attempt_id is None:
        return "skipped"
    attempt = Attempt(job, attempt_id, deps)
    try:
        bounds = fan_out.slice_bounds(attempt)
        if len(bounds) > 2:
            return fan_out.start(attempt, bounds)
        return write_alone(attempt)
    except Superseded:
        return "superseded"
    except Exception as exc:  # whatever broke, the job must end with a reason, not hang
        reason = failure_reason(exc)
        logger.warning("export attempt failed", extra={"job_id": job_id, "final": final_attempt, "reason": reason})
        if not final_attempt:
            deps.jobs.release(job_id, attempt_id, reason, attempt.now())
            raise
        deps.jobs.finish(job_id, attempt_id, {"status": "failed", "error": reason, "updated_at": attempt.now()})
        return "failed"


def write_alone(attempt: Attempt) -> str:
    """The whole file by this worker; an upload that fails is aborted, so no partial file is left."""
    job, deps = attempt.job, attempt.deps
    writer = deps.files.writer(job["object_key"], _content_type(job))
    try:
        rows = write_file(attempt, writer)
        writer.complete()
    except Exception:
        writer.abort()
        raise
    done = {"status": "succeeded", "rows": rows, "updated_at": attempt.now(), "completed_at": attempt.now()}
    return "succeeded" if deps.jobs.finish(job["job_id"], attempt.attempt_id, done) else "superseded"


def _content_type(job: dict[str, Any]) -> str:
    return "application/pdf" if job["format"] == "pdf" else fan_out.CSV


def write_file(attempt: Attempt, writer: FileWriter) -> int:
    job = attempt.job
    if job["kind"] == "requests":
        return write_requests(attempt, writer)
    if job["format"] == "pdf":
        return write_breakdown(attempt, writer) if job.get("metric") else write_report(attempt, writer)
    return write_activity(attempt, writer)


def write_requests(attempt: Attempt, writer: FileWriter) -> int:
    """One row per ledger record of the window, oldest first, 1000 records a page."""
    job, window = attempt.job, attempt.window
    query = job_query(job, window.start_iso, window.end_iso)
    writer.write(HEADER)
    deps = attempt.deps
    return write_request_rows(deps.ledger, query, writer, attempt.progress, processes=deps.row_processes)


def _bucket_bounds(window: Window, granularity: Granularity) -> tuple[datetime, datetime]:
    """Whole buckets covering the window: exports by bucket cannot split one."""
    return floor(window.start, granularity), floor(window.end - timedelta(microseconds=1), granularity)


def write_activity(attempt: Attempt, writer: FileWriter) -> int:
    """One row per bucket and group (an empty bucket gets one row of zeros, so charts have no
    holes); with a metric, only its counters (the cost; the token classes; requests and errors)."""
    job, deps = attempt.job, attempt.deps
    granularity: Granularity = job["granularity"]
    first, last = _bucket_bounds(attempt.window, granularity)
    names = {key.key_id: key.name for key in deps.keys.list_keys(job["account_id"])}
    series = reports.bucket_series(deps.rollups, job["account_id"], first, last, granularity, job["group_by"], names)
    metric = job.get("metric")
    kept = [n for n, c in enumerate(ACTIVITY_COLUMNS) if n < 5 or not metric or c in METRIC_COUNTERS[metric]]
    rows = [
        [cell(row[n]) for n in kept]
        for bucket in series["buckets"]
        for row in _activity_rows(bucket, granularity, job["group_by"], names)
    ]
    attempt.progress(0, total=len(rows))
    writer.write(csv_text([[ACTIVITY_COLUMNS[n] for n in kept]]).encode("utf-8"))
    writer.write(csv_text(rows).encode("utf-8"))
    attempt.progress(len(rows))
    return len(rows)


def _activity_rows(bucket: dict[str, Any], granularity: str, group_by: str, names: dict[str, str]) -> list[list[Any]]:
    groups = bucket["groups"] or {"": {name: 0 for name in ACTIVITY_COLUMNS[5:-1]} | {"cost": "0"}}
    return [
        [bucket["start"], granularity, group_by, group, names.get(group, group)]
        + [figures[name] for name in ACTIVITY_COLUMNS[5:-1]]
        + [Decimal(figures["cost"])]
        for group, figures in groups.items()
    ]


# What each grouping's pages say it is, and what its id is called.
_GROUP_KINDS = {
    "key": ("API KEY", "Key ID"),
    "member": ("MEMBER", "Member ID"),
    "model": ("MODEL", "Model ID"),
    "provider": ("PROVIDER", "Provider ID"),
    "user": ("USER", "User"),
    "app": ("APP", "App"),
}
# The groupings whose rollups keep each group's models, and the filter that reads them.
_OWN_MODELS = {"model": "model", "user": "user", "app": "app", "key": "key_id"}


def write_breakdown(attempt: Attempt, writer: FileWriter) -> int:
    """A metric by a grouping as PDF: the window's whole buckets of the grouping's rollups, every
    group's figures (the summary's overview is their sum), and each group's models where the
    rollups keep them (a key's; a member's, from their keys'; a model's own row)."""
    from meterway.exports.logic.pdf_report import BreakdownData, GroupSection, render_breakdown

    job, deps = attempt.job, attempt.deps
    account, metric, group_by = job["account_id"], job["metric"], job["group_by"]
    granularity: Granularity = job.get("granularity") or "day"
    first, last = _bucket_bounds(attempt.window, granularity)
    keys = [key for key in deps.keys.list_keys(account) if key.kind == "api"]
    names = {key.key_id: key.name for key in keys}
    series = reports.bucket_series(deps.rollups, account, first, last, granularity, group_by, names)
    field = METRIC_FIELD[metric]
    totals = Counters()
    for group in series["groups"]:
        totals.add({**group, "cost_usd": group["cost"]})
    attempt.progress(0, total=records_of(reports.summary(totals)))
    window = Window(first, step(last, granularity))
    kind, id_label = _GROUP_KINDS[group_by]
    sections = [
        GroupSection(
            kind,
            group["group"],
            group["name"],
            _group_detail(group_by, group["group"], keys),
            group,
            [
                (bucket["label"], str(bucket["groups"].get(group["group"], {}).get(field, 0)))
                for bucket in series["buckets"]
            ],
            _group_models(deps, account, window, group_by, group["group"], keys),
            id_label,
        )
        for group in sorted(series["groups"], key=lambda group: (-Decimal(str(group[field])), group["group"]))
    ]
    data = BreakdownData(
        account_id=account,
        metric=metric,
        grouping=GROUP_NAMES[group_by],
        start=window.start_iso,
        end=window.end_iso,
        generated_at=attempt.now(),
        totals=reports.summary(totals),
        series=[(bucket["label"], str(bucket[field])) for bucket in series["buckets"]],
        groups=sections,
    )
    writer.write(render_breakdown(data))
    records = records_of(data.totals)
    attempt.progress(records)
    return records


def _group_detail(group_by: str, group: str, keys: list[Any]) -> str:
    if group_by == "member":
        theirs = [key.name for key in keys if (key.member or NO_MEMBER) == group]
        return f"Keys: {', '.join(sorted(theirs))}" if theirs else "No API key now"
    if group_by == "key":
        member = next((key.member for key in keys if key.key_id == group), None)
        return f"Member: {member or 'none'}"
    return ""


def _group_models(
    deps: Any, account: str, window: Window, group_by: str, group: str, keys: list[Any]
) -> list[dict[str, Any]] | None:
    """A group's per-model figures: a key's, a user's or an app's own, a member's summed over
    their keys, a model's own row; None for a provider (no rollup keeps models by provider)."""
    if group_by == "provider":
        return None
    if group_by in _OWN_MODELS:
        own = {_OWN_MODELS[group_by]: group}
        return list(reports.usage_summary(deps.rollups, account, window, **own)["models"])
    per_model: dict[str, Counters] = {}
    for key_id in [key.key_id for key in keys if (key.member or NO_MEMBER) == group]:
        for row in reports.usage_summary(deps.rollups, account, window, key_id=key_id)["models"]:
            per_model.setdefault(row["model"], Counters()).add({**row, "cost_usd": row["cost"]})
    ordered = sorted(per_model.items(), key=lambda item: (-item[1].cost_usd, item[0]))
    return [{"model": model, **reports.summary(counters)} for model, counters in ordered]


def write_report(attempt: Attempt, writer: FileWriter) -> int:
    """The PDF report: a summary page for the account, then a page per API key."""
    # fpdf2 and Pillow weigh ~29 MiB: only PDF jobs load them, CSV jobs stay lean.
    from meterway.exports.logic.pdf_report import KeySection, ReportData, render_report

    job, deps = attempt.job, attempt.deps
    account, window = job["account_id"], attempt.window
    granularity: Granularity = job.get("granularity") or "day"
    first, last = _bucket_bounds(window, granularity)
    overall = reports.usage_summary(deps.rollups, account, window)
    records = records_of(overall["totals"])
    attempt.progress(0, total=records)
    total_series = reports.bucket_series(deps.rollups, account, first, last, granularity, "total", {})
    by_key = reports.bucket_series(deps.rollups, account, first, last, granularity, "key", {})
    sections = []
    for key in sorted((k for k in deps.keys.list_keys(account) if k.kind == "api"), key=lambda k: (k.name, k.key_id)):
        usage = reports.usage_summary(deps.rollups, account, window, key_id=key.key_id)
        daily = [(b["label"], b["groups"].get(key.key_id, {}).get("cost", "0")) for b in by_key["buckets"]]
        sections.append(KeySection(key.key_id, key.name, key.member, usage["totals"], usage["models"], daily))
    data = ReportData(
        account_id=account,
        title="Meterway usage report",
        start=window.start_iso,
        end=window.end_iso,
        generated_at=attempt.now(),
        totals=overall["totals"],
        series=[(bucket["label"], bucket["cost"]) for bucket in total_series["buckets"]],
        top_models=overall["models"][: reports.TOP_MODELS],
        keys=sections,
    )
    writer.write(render_report(data))
    attempt.progress(records)
    return records
