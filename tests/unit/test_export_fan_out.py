"""A large request export fanned out over time slices: the file is byte for byte the one a single
worker writes, whatever order the slices run in, however small a slice turns out, and whichever
worker dies or is delivered twice; every part but the last is S3's minimum or more."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meterway.analytics.logic.rollups import contribution, rollup_updates
from meterway.analytics.logic.windows import Window
from meterway.core.errors import StorageError
from meterway.exports.logic import slice_plan
from meterway.exports.logic.attempts import ExportDeps
from meterway.exports.logic.export_jobs import ExportCreate, new_job, rows_written
from meterway.exports.logic.fan_out import PARTS_PER_SLICE
from meterway.exports.logic.run_export import run_message
from tests.fakes import InMemoryFiles, InMemoryJobs, InMemoryKeyStore, InMemoryLedger, InMemoryQueue, InMemoryRollups
from tests.ledger_factory import KEYS, MODELS, ledger_item

DAY = datetime(2026, 11, 20, tzinfo=UTC)
NOW = DAY + timedelta(days=3)
MAX_RECEIVES = 3


class Records:
    """A ledger and its rollups, read-only for exports: built once, shared by stacks."""

    def __init__(self, items: list[dict[str, Any]], *, counted: list[dict[str, Any]] | None = None):
        self.items = items
        self.ledger, self.rollups = InMemoryLedger(), InMemoryRollups()
        for item in items:
            self.ledger.put(item)
        for item in items if counted is None else counted:
            counted_item = contribution(item)  # its rollups, and its key's use as every writer records it
            self.rollups.add([], counted_item.updates, [counted_item.use] if counted_item.use else [])
        self._single: dict[tuple[tuple[str, Any], ...], bytes] = {}

    def single_workers_file(self, **body: Any) -> bytes:
        key = tuple(sorted(body.items()))
        if key not in self._single:
            alone = Stack(self)
            job = alone.export(slice_rows=0, **body)
            assert job["status"] == "succeeded" and alone.outcomes == ["succeeded"]
            self._single[key] = alone.file(job)
        return self._single[key]


class Stack:
    """The export worker's stores in memory, and SQS delivering the queue's messages in any order."""

    def __init__(self, records: Records):
        self.ledger, self.rollups = records.ledger, records.rollups
        self.jobs, self.files, self.queue = InMemoryJobs(), InMemoryFiles(), InMemoryQueue()
        self.outcomes: list[str] = []

    def deps(self, slice_rows: int) -> ExportDeps:
        return ExportDeps(
            self.jobs,
            self.ledger,
            self.rollups,
            InMemoryKeyStore(),
            self.files,
            self.queue,
            clock=lambda: NOW,
            slice_rows=slice_rows,
        )

    def export(self, slice_rows: int, *, seed: int = 0, **body: Any) -> dict[str, Any]:
        """Start a requests export of the three days and deliver messages until the queue is empty."""
        request = ExportCreate(kind="requests", start="2026-11-20", end="2026-11-22", **body)
        job = new_job("acct", request, Window(DAY, DAY + timedelta(days=3)), NOW)
        self.jobs.create(job)
        self.queue.send({"job_id": job["job_id"]})
        self.deliver(self.deps(slice_rows), random.Random(seed))
        return self.jobs.jobs[job["job_id"]]

    def deliver(self, deps: ExportDeps, rng: random.Random) -> None:
        """SQS, at random: a message that raises comes back (its receive count up) until the last."""
        pending: list[tuple[dict[str, Any], int]] = []
        while pending or self.queue.sent:
            pending += [(message, 0) for message in self.queue.sent]
            self.queue.sent.clear()
            message, received = pending.pop(rng.randrange(len(pending)))
            try:
                self.outcomes.append(run_message(message, deps, final_attempt=received + 1 >= MAX_RECEIVES))
            except StorageError:
                pending.append((message, received + 1))

    def file(self, job: dict[str, Any]) -> bytes:
        return self.files.objects[job["object_key"]]


def spread(count: int, *, hours: float = 72, start: datetime = DAY) -> list[dict[str, Any]]:
    """``count`` records evenly over ``hours`` from ``start``, over three keys and models."""
    step = timedelta(hours=hours) / count
    return [ledger_item(start + step * n, key=KEYS[n % 3], model=MODELS[n % 2]) for n in range(count)]


@pytest.fixture(scope="module")
def records() -> Records:
    """2,400 records over the three days: 30 slices' worth at 80 records a slice."""
    return Records(spread(2400))


SLICE_ROWS = 80


@pytest.mark.parametrize("seed", range(3))
def test_the_fanned_out_file_is_byte_for_byte_the_single_workers(records, seed):
    stack = Stack(records)

    job = stack.export(SLICE_ROWS, seed=seed)

    assert job["status"] == "succeeded", job
    assert stack.outcomes.count("fanned out") == 1
    assert len(job["cuts"]) - 1 == slice_plan.MAX_SLICES  # 30 slices' worth, at most 20 workers
    assert stack.file(job) == records.single_workers_file()
    assert job["rows"] == len(records.items)
    assert stack.files.uploads == {}  # completed: nothing left behind


@pytest.mark.parametrize(
    "body", [{"key": KEYS[1].key_id}, {"model": MODELS[0]}, {"key": KEYS[2].key_id, "model": MODELS[1]}]
)
def test_a_filtered_export_fans_out_over_its_own_records(records, body):
    stack = Stack(records)

    job = stack.export(SLICE_ROWS // 4, **body)

    assert len(job["cuts"]) > 2
    assert stack.file(job) == records.single_workers_file(**body)


def test_slices_too_small_for_a_part_are_written_by_the_slice_before_them():
    # Given rollups that expect records evenly over three days, when they all fell in the last
    # six hours: most slices are empty, the last ones hold everything
    late = Records(spread(1200, hours=6, start=DAY + timedelta(hours=66)), counted=spread(1200))
    stack = Stack(late)

    job = stack.export(SLICE_ROWS)

    assert job["status"] == "succeeded"
    assert stack.file(job) == late.single_workers_file()
    # Slice 0 went on through every empty slice, and its run covers them
    assert job["slice_0"]["through"] > 0


def test_every_part_but_the_last_is_at_least_s3s_minimum_and_in_its_slices_own_numbers(records):
    stack = Stack(records)
    seen: list[dict[str, Any]] = []
    complete = stack.files.complete_upload

    def noting(key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        seen.extend(parts)
        complete(key, upload_id, parts)

    stack.files.complete_upload = noting  # type: ignore[method-assign]
    job = stack.export(SLICE_ROWS)

    numbers = [part["PartNumber"] for part in seen]
    assert numbers == sorted(numbers) and len(numbers) > slice_plan.MAX_SLICES
    starts = {(number - 1) // PARTS_PER_SLICE for number in numbers}
    assert starts == set(range(len(job["cuts"]) - 1))  # every slice wrote its own run


def test_a_worker_that_dies_mid_slice_is_retried_without_a_duplicate_or_a_gap(records):
    stack = Stack(records)
    uploads = stack.files.upload_part
    calls = {"n": 0}

    def dying(key: str, upload_id: str, number: int, body: bytes) -> str:
        calls["n"] += 1
        if calls["n"] in (5, 17, 18):  # three workers lose S3 midway, after some of their parts
            raise StorageError("the worker died")
        return uploads(key, upload_id, number, body)

    stack.files.upload_part = dying  # type: ignore[method-assign]
    job = stack.export(SLICE_ROWS, seed=7)

    assert job["status"] == "succeeded"
    assert stack.file(job) == records.single_workers_file()
    assert job["rows"] == len(records.items)


def test_a_slice_delivered_again_after_its_run_was_recorded_completes_the_file_once(records):
    # Given a completion that fails once (the worker that recorded the last run died there)
    stack = Stack(records)
    complete = stack.files.complete_upload
    failures = iter([StorageError("died before completing")])

    def flaky(key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        failure = next(failures, None)
        if failure:
            raise failure
        complete(key, upload_id, parts)

    stack.files.complete_upload = flaky  # type: ignore[method-assign]

    job = stack.export(SLICE_ROWS, seed=3)

    # Then its retry finds every run recorded and completes the file, and the job succeeds once
    assert stack.outcomes.count("succeeded") == 1
    assert job["status"] == "succeeded"
    assert stack.file(job) == records.single_workers_file()


def test_a_slice_run_twice_is_recorded_once(records):
    stack = Stack(records)
    original = stack.queue.send_batch

    def duplicated(messages: list[dict[str, Any]]) -> None:
        original(messages + messages[3:6])  # SQS delivers some messages twice

    stack.queue.send_batch = duplicated  # type: ignore[method-assign]
    job = stack.export(SLICE_ROWS, seed=5)

    assert stack.outcomes.count("succeeded") == 1
    assert stack.file(job) == records.single_workers_file()


def test_a_slice_failing_on_its_last_delivery_fails_the_job_and_leaves_no_file(records):
    stack = Stack(records)
    stack.files.fail_part_uploads = 10_000

    job = stack.export(SLICE_ROWS)

    assert job["status"] == "failed"
    assert job["error"].startswith("The export could not be written")
    assert stack.files.objects == {} and stack.files.uploads == {}


def test_the_slices_of_a_superseded_attempt_do_nothing(records):
    stack = Stack(records)
    request = ExportCreate(kind="requests", start="2026-11-20", end="2026-11-22")
    job = new_job("acct", request, Window(DAY, DAY + timedelta(days=3)), NOW)
    stack.jobs.create(job)
    deps = stack.deps(SLICE_ROWS)
    # Given an attempt that planned and queued its slices, then a second delivery of the job
    assert run_message({"job_id": job["job_id"]}, deps, final_attempt=False) == "fanned out"
    stale = list(stack.queue.sent)
    stack.queue.sent.clear()
    assert run_message({"job_id": job["job_id"]}, deps, final_attempt=False) == "fanned out"

    # When the first attempt's slices run, they do nothing; the second attempt's write the file
    assert {run_message(message, deps, final_attempt=False) for message in stale} == {"skipped"}
    stack.deliver(deps, random.Random(1))

    assert stack.jobs.jobs[job["job_id"]]["status"] == "succeeded"
    assert stack.file(stack.jobs.jobs[job["job_id"]]) == records.single_workers_file()


def test_a_running_fanned_out_job_reports_the_rows_its_slices_wrote():
    job = {"status": "running", "cuts": ["a", "b", "c", "d"], "rows": 0, "slice_rows_0": 1000, "slice_rows_2": 500}
    assert rows_written(job) == 1500
    assert rows_written(job | {"status": "succeeded", "rows": 4242}) == 4242


def test_an_export_of_under_two_slices_worth_is_written_by_one_worker(records):
    stack = Stack(records)

    job = stack.export(len(records.items) // 2 + 1)

    assert stack.outcomes == ["succeeded"]
    assert "cuts" not in job and job["rows"] == len(records.items)


# --- Where the window is cut ----------------------------------------------------------------------

WINDOW = Window(DAY, DAY + timedelta(days=1))


def hours(counts: Callable[[int], float]) -> list[tuple[datetime, datetime, float]]:
    return [(DAY + timedelta(hours=h), DAY + timedelta(hours=h + 1), counts(h)) for h in range(24)]


def test_cuts_share_the_records_evenly_at_whole_seconds():
    bounds = slice_plan.cuts(WINDOW, hours(lambda h: 1000), slice_rows=6000)

    assert bounds == [DAY + timedelta(hours=h) for h in range(0, 25, 6)]


def test_cuts_follow_where_the_records_are():
    # All the day's records in two busy hours: the slices are there, and each is whole seconds
    bounds = slice_plan.cuts(WINDOW, hours(lambda h: 5000 if h in (9, 10) else 0), slice_rows=2500)

    assert bounds[0] == DAY and bounds[-1] == DAY + timedelta(days=1)
    assert all(DAY + timedelta(hours=9) <= moment <= DAY + timedelta(hours=11) for moment in bounds[1:-1])
    assert len(bounds) - 1 == 4
    assert all(moment.microsecond == 0 for moment in bounds)


@pytest.mark.parametrize(("records", "slices"), [(0, 1), (1999, 1), (2000, 2), (50_000, slice_plan.MAX_SLICES)])
def test_under_two_slices_worth_is_one_slice_and_never_more_than_the_most(records, slices):
    bounds = slice_plan.cuts(WINDOW, hours(lambda h: records / 24), slice_rows=1000)
    assert len(bounds) - 1 == slices


def test_no_fan_out_when_slice_rows_is_zero():
    assert slice_plan.cuts(WINDOW, hours(lambda h: 10**6), slice_rows=0) == [WINDOW.start, WINDOW.end]


def test_buckets_are_counted_by_their_part_inside_the_window():
    window = Window(DAY + timedelta(minutes=30), DAY + timedelta(hours=2))
    bounds = slice_plan.cuts(window, hours(lambda h: 3000), slice_rows=1500)

    # 1,500 records in the half hour of the first bucket and 3,000 in the second: three slices
    assert bounds == [window.start, DAY + timedelta(hours=1), DAY + timedelta(hours=1, minutes=30), window.end]


def test_a_window_that_ends_now_plans_by_the_records_of_the_running_bucket_not_its_whole_length():
    # Given 18 records counted in today's day bucket by 05:30, and a 30-day window ending at 05:30
    now = DAY + timedelta(hours=5, minutes=30)
    records = InMemoryRollups()
    for second in range(18):
        records.add([], rollup_updates(ledger_item(DAY + timedelta(minutes=10 * second), key=KEYS[0])), [])
    window = Window(now - timedelta(days=30), now)
    job = new_job(KEYS[0].account_id, ExportCreate(kind="requests"), window, now)

    counts = slice_plan.request_counts(records, job, window, now)

    # Then the running bucket ends now, so all 18 records count toward the plan: six slices of 3
    # (taken as spread over the whole day, 5.5 of its 24 hours would hold only 4 records: one slice)
    assert sum(count for _, _, count in counts) == 18
    assert len(slice_plan.cuts(window, counts, slice_rows=3)) - 1 == 6
