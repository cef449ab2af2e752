"""Export files: exact rows, safe cells, and jobs that end whole or fail with a reason."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from meterway.analytics.logic.windows import Window, parse_window
from meterway.core.errors import StorageError
from meterway.exports.logic.attempts import ExportDeps
from meterway.exports.logic.csv_format import REQUEST_COLUMNS, cell, csv_text, request_row
from meterway.exports.logic.export_jobs import ExportCreate, filename, new_job
from meterway.exports.logic.run_export import run_job
from tests.fakes import (
    InMemoryFiles,
    InMemoryJobs,
    InMemoryKeyStore,
    InMemoryLedger,
    InMemoryQueue,
    InMemoryRollups,
)
from tests.ledger_factory import KEYS, ledger_item

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x")', "+1+2", "-2", "@SUM(A1)", "\tindent", "\rreturn"])
def test_text_that_a_spreadsheet_would_run_gets_an_apostrophe(text):
    assert cell(text) == "'" + text


@pytest.mark.parametrize(
    ("value", "expected"),
    [(42, 42), (Decimal("0.000195"), "0.000195"), (Decimal(0), "0"), (True, "true"), (None, ""), ("gpt-4o", "gpt-4o")],
)
def test_numbers_stay_numbers_and_plain_text_is_untouched(value, expected):
    assert cell(value) == expected


def test_csv_is_rfc_4180_with_crlf_and_doubled_quotes():
    text = csv_text([["a,b", 'say "hi"', "line\nbreak", "plain"]])
    assert text == '"a,b","say ""hi""","line\nbreak",plain\r\n'
    assert next(csv.reader(io.StringIO(text))) == ["a,b", 'say "hi"', "line\nbreak", "plain"]


def test_a_request_row_has_every_ledger_field_in_column_order():
    item = ledger_item(NOW, cost=Decimal("0.000195")) | {
        "user": "=cmd|' /C calc'!A0",
        "prices": {"input_mtok": Decimal("0.15")},
    }
    row = dict(zip(REQUEST_COLUMNS, request_row(item), strict=True))
    assert row["request_id"] == item["request_id"]
    assert row["cost_usd"] == "0.000195"
    assert row["price_input_mtok"] == "0.15"
    assert row["user"].startswith("'=")
    assert row["total_tokens"] == item["total_tokens"]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-11-01", "2026-11-22", "usage-2026-11-01_2026-11-22.csv"),
        ("2026-11-01T08:30:00Z", "2026-11-02T00:00:00Z", "usage-2026-11-01T0830Z_2026-11-02T0000Z.csv"),
    ],
)
def test_the_request_export_is_named_after_its_window(start, end, expected):
    window = parse_window(start, end, NOW, from_rollups=False)
    assert filename(ExportCreate(kind="requests", start=start, end=end), window) == expected


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "requests", "format": "pdf"},
        {"kind": "requests", "group_by": "model"},
        {"kind": "activity", "model": "openai/gpt-4o"},
        {"kind": "invoices"},
        {"kind": "requests", "format": "xlsx"},
    ],
)
def test_export_requests_that_make_no_sense_are_refused(body):
    with pytest.raises(ValidationError):
        ExportCreate.model_validate(body)


def deps_with(items: list[dict], files: InMemoryFiles, jobs: InMemoryJobs) -> ExportDeps:
    ledger = InMemoryLedger()
    for item in items:
        ledger.put(item)
    return ExportDeps(jobs, ledger, InMemoryRollups(), InMemoryKeyStore(), files, InMemoryQueue(), clock=lambda: NOW)


def a_job(jobs: InMemoryJobs, **body) -> str:
    request = ExportCreate(kind="requests", start="2026-11-20", end="2026-11-22", **body)
    job = new_job("acct", request, parse_window(request.start, request.end, NOW, from_rollups=False), NOW)
    jobs.create(job)
    return str(job["job_id"])


def rows_of(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def some_items(count: int) -> list[dict]:
    start = datetime(2026, 11, 20, tzinfo=UTC)
    return [ledger_item(start + timedelta(seconds=61 * n), key=KEYS[n % 2]) for n in range(count)]


def test_an_export_has_one_row_per_record_in_the_window_oldest_first():
    files, jobs = InMemoryFiles(), InMemoryJobs()
    items = some_items(2300)
    outside = ledger_item(datetime(2026, 11, 23, 0, 0, tzinfo=UTC))
    job_id = a_job(jobs)
    assert run_job(job_id, deps_with([*items, outside], files, jobs), final_attempt=False) == "succeeded"
    rows = rows_of(files.objects[jobs.jobs[job_id]["object_key"]])
    assert [row["request_id"] for row in rows] == [item["request_id"] for item in items]
    assert jobs.jobs[job_id]["rows"] == 2300
    assert jobs.jobs[job_id]["status"] == "succeeded"


def test_rows_made_in_child_processes_make_the_same_file():
    items = some_items(2300)
    files = {}
    for processes in (0, 1, 2):
        stored, jobs = InMemoryFiles(), InMemoryJobs()
        job_id = a_job(jobs)
        deps = dataclasses.replace(deps_with(items, stored, jobs), row_processes=processes)
        assert run_job(job_id, deps, final_attempt=False) == "succeeded"
        assert jobs.jobs[job_id]["rows"] == 2300
        files[processes] = stored.objects[jobs.jobs[job_id]["object_key"]]

    assert files[1] == files[2] == files[0]
    assert len(rows_of(files[2])) == 2300


def test_a_key_filter_keeps_only_that_keys_rows():
    files, jobs = InMemoryFiles(), InMemoryJobs()
    job_id = a_job(jobs, key=KEYS[1].key_id)
    run_job(job_id, deps_with(some_items(10), files, jobs), final_attempt=False)
    rows = rows_of(files.objects[jobs.jobs[job_id]["object_key"]])
    assert {row["key_id"] for row in rows} == {KEYS[1].key_id}
    assert len(rows) == 5


def test_a_retried_attempt_writes_the_whole_file_once_and_never_duplicates_rows():
    files, jobs = InMemoryFiles(), InMemoryJobs()
    items = some_items(2500)
    deps = deps_with(items, files, jobs)
    job_id = a_job(jobs)
    files.fail_after_writes = 2  # header and the first page, then S3 fails
    with pytest.raises(StorageError):
        run_job(job_id, deps, final_attempt=False)
    assert jobs.jobs[job_id]["status"] == "queued"
    assert "S3 went away" in jobs.jobs[job_id]["last_error"]
    assert files.objects == {} and files.aborted == 1

    assert run_job(job_id, deps, final_attempt=False) == "succeeded"
    rows = rows_of(files.objects[jobs.jobs[job_id]["object_key"]])
    assert len(rows) == len({row["request_id"] for row in rows}) == 2500


def test_the_last_attempt_fails_the_job_with_a_reason_and_leaves_no_file():
    files, jobs = InMemoryFiles(), InMemoryJobs()
    job_id = a_job(jobs)
    files.fail_after_writes = 1
    assert run_job(job_id, deps_with(some_items(1500), files, jobs), final_attempt=True) == "failed"
    job = jobs.jobs[job_id]
    assert job["status"] == "failed"
    assert job["error"].startswith("The export could not be written")
    assert files.objects == {}


def test_a_finished_job_is_not_run_again():
    files, jobs = InMemoryFiles(), InMemoryJobs()
    deps = deps_with(some_items(3), files, jobs)
    job_id = a_job(jobs)
    run_job(job_id, deps, final_attempt=False)
    files.objects.clear()
    assert run_job(job_id, deps, final_attempt=False) == "skipped"
    assert files.objects == {}


def test_an_attempt_that_lost_its_claim_stops_and_writes_nothing():
    files, jobs = InMemoryFiles(), InMemoryJobs()
    deps = deps_with(some_items(1200), files, jobs)
    job_id = a_job(jobs)
    original_progress = jobs.progress

    def steal(job_id_: str, attempt: str, rows: int, now: str, total: int | None = None) -> bool:
        jobs.claim(job_id_, now)  # a duplicate delivery starts its own attempt
        jobs.progress = original_progress  # type: ignore[method-assign]
        return original_progress(job_id_, attempt, rows, now, total)

    jobs.progress = steal  # type: ignore[method-assign]
    assert run_job(job_id, deps, final_attempt=False) == "superseded"
    assert files.objects == {}


def test_windows_are_checked_against_the_ledger_retention():
    from meterway.core.errors import InvalidRequest
    from meterway.exports.logic.export_jobs import check_retention

    window = Window(NOW - timedelta(days=40), NOW)
    check_retention(window, NOW, retention_days=0)
    with pytest.raises(InvalidRequest):
        check_retention(window, NOW, retention_days=30)
