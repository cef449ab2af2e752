"""In-memory stand-ins for the data access layer, for unit tests of the logic."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from meterway.accounts.dal.quota_store import Cause, ReservationRefused, Standing
from meterway.accounts.models import ApiKey, CounterDelta, Reservation
from meterway.analytics.dal.rollup_store import AlreadyCounted, summed
from meterway.analytics.dal.rollups_table import KEY_DIMENSION, bucket_range, cell_sk, partition, read_partitions
from meterway.analytics.models import Change, Counters, LastUse, Part, RollupUpdate
from meterway.core.aws import serialize
from meterway.core.clock import Granularity
from meterway.core.errors import StorageError
from meterway.exports.dal.export_files import S3PartWriter
from meterway.exports.dal.export_jobs import slice_attribute, slice_rows_attribute
from meterway.ledger.attribution import NONE
from meterway.ledger.dal.ledger_store import LedgerQuery, projection


class InMemoryKeyStore:
    def __init__(self) -> None:
        self.by_hash: dict[str, ApiKey] = {}
        self.lookups = 0

    def get_by_hash(self, key_hash: str) -> ApiKey | None:
        self.lookups += 1
        return self.by_hash.get(key_hash)

    async def find_by_hash(self, key_hash: str) -> ApiKey | None:
        return self.get_by_hash(key_hash)

    def put(self, key: ApiKey, key_hash: str) -> None:
        assert key_hash not in self.by_hash
        self.by_hash[key_hash] = key

    def list_keys(self, account_id: str) -> list[ApiKey]:
        return [key for key in self.by_hash.values() if key.account_id == account_id]

    def get_key(self, account_id: str, key_id: str) -> ApiKey | None:
        return next((key for key in self.list_keys(account_id) if key.key_id == key_id), None)


@dataclass
class FakeQuotas:
    """Reservations as the quota store takes them; ``refuse`` names the condition that fails."""

    refuse: Cause | None = None
    reserved: list[tuple[Reservation, str]] = field(default_factory=list)
    # What a check reads, as the store would give it back.
    standing: Standing = field(default_factory=Standing)

    async def reserve(self, reservation: Reservation, key_hash: str, now: datetime) -> Standing:
        if self.refuse:
            raise ReservationRefused(self.refuse)
        self.reserved.append((reservation, key_hash))
        return self.standing

    def counters(self, reservation: Reservation) -> dict[str, dict[str, Any]]:
        return {}


class InMemoryLedger:
    """Conditional put on the request id; ``failures`` makes the next N writes fail like a throttle."""

    def __init__(self, failures: int = 0) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.failures = failures
        self.attempts = 0
        self._wire: dict[str, dict[str, Any]] = {}

    def put(self, item: dict[str, Any]) -> bool:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise StorageError("throttled")
        if item["request_id"] in self.items:
            return False
        self.items[item["request_id"]] = copy.deepcopy(item)
        return True

    async def write(self, item: dict[str, Any]) -> bool:
        return self.put(item)

    def get(self, request_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.items.get(request_id))

    def page(
        self, query: LedgerQuery, limit: int, start_key: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Newest first, ``limit`` at most a page; the start key is the last record's ``created_sk``."""
        matching = self._matching(query)[::-1]
        if start_key is not None:
            matching = [item for item in matching if item["created_sk"] < start_key["created_sk"]]
        page = [copy.deepcopy(item) for item in matching[:limit]]
        more = len(matching) > limit
        return page, ({"created_sk": page[-1]["created_sk"]} if more else None)

    def _matching(self, query: LedgerQuery) -> list[dict[str, Any]]:
        return sorted(
            (
                item
                for item in self.items.values()
                if item["account_id"] == query.account_id
                and query.start <= item["created_sk"] <= query.end
                and query.key_id in (None, item["key_id"])
                and query.model in (None, item["model"])
                and (query.status in (None, item["status"]) or bool(item.get("attempt_of")))
                and all(item.get(field, NONE) == value for field, value in query.named().items())
            ),
            key=lambda item: item["created_sk"],
        )

    def wire_pages(
        self, query: LedgerQuery, page_size: int = 1000, fields: Sequence[str] | None = None
    ) -> Iterator[bytes]:
        """The records in DynamoDB's JSON, as the table's Query sends them (each serialized once)."""
        matching = self._matching(query)
        for index in range(0, len(matching), page_size):
            page = [self._wired(item) for item in matching[index : index + page_size]]
            if fields:
                wanted = projection(fields)
                page = [{name: item[name] for name in wanted if name in item} for item in page]
            yield json.dumps(page).encode("utf-8")

    def _wired(self, item: dict[str, Any]) -> dict[str, Any]:
        if item["request_id"] not in self._wire:
            self._wire[item["request_id"]] = serialize(item)
        return self._wire[item["request_id"]]


class InMemorySpill:
    def __init__(self, broken: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.broken = broken

    def send(self, item: dict[str, Any]) -> None:
        if self.broken:
            raise StorageError("queue down")
        self.sent.append(copy.deepcopy(item))


class InMemoryRollups:
    """The RollupsTable's semantics: a marker per request id, ADD on counters, BETWEEN on sort keys,
    last uses only ever raised, the in-between rows' start set once. ``fail_chunks`` makes the
    next N writes fail like a throttle. ``items_read`` counts as ``DynamoRollupStore`` does."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        # The markers: (request id, part kind); and the records a version before the parts
        # counted whole (its one marker, which the key part's now is).
        self.applied: set[tuple[str, str]] = set()
        self.counted_whole: set[str] = set()
        # From when each account's records are counted as each change says.
        self.changes: dict[tuple[str, str], datetime] = {}
        # Each write's kind of parts and its rollup items (pk, sk); the next write of ``fail_kind``
        # parts fails like a throttle.
        self.writes: list[tuple[str, list[tuple[str, str]]]] = []
        self.fail_kind: str | None = None
        self.uses: dict[tuple[str, str], str] = {}
        self.admin_uses: dict[tuple[str, str], str] = {}
        # The keys table's counters the records settle, by (pk, sk).
        self.counters: dict[tuple[str, str], dict[str, Any]] = {}
        self.complete_from: dict[str, datetime] = {}
        self.items_read = 0
        self.fail_chunks = 0
        # The counters' read copies as last spread (one per counter stands for all of them).
        self.copies: dict[tuple[str, str], dict[str, Any]] = {}
        self.fail_spreads = 0

    def add(
        self,
        parts: list[Part],
        updates: list[RollupUpdate],
        uses: list[LastUse],
        counters: list[CounterDelta] | None = None,
    ) -> None:
        if self.fail_chunks:
            self.fail_chunks -= 1
            raise StorageError("throttled")
        kind = parts[0].kind if parts else "key"
        if self.fail_kind == kind:
            self.fail_kind = None
            raise StorageError("throttled")
        for use in uses:
            self.raise_last_use(use)
        counted = {part.request_id for part in parts if (part.request_id, part.kind) in self.applied}
        # The old marker is the key part's own, and the account part's when it checks it (``legacy``)
        whole = {part.request_id for part in parts if part.legacy or part.kind == "key"} & self.counted_whole
        counted |= whole
        if counted:
            raise AlreadyCounted(counted)
        self.applied |= {(part.request_id, part.kind) for part in parts}
        self.writes.append((kind, [(update.pk, update.sk) for update in updates]))
        for update in updates:
            row = self.items.setdefault((update.pk, update.sk), {})
            for name, value in update.deltas.items():
                row[name] = row.get(name, 0) + value
            row |= {"bucket": update.bucket, "dimension": update.dimension, "value": update.value}
        for counter in counters or []:
            item = self.counters.setdefault((counter.pk, counter.sk), {})
            for name, value in counter.deltas.items():
                item[name] = item.get(name, 0) + value

    def spread_copies(self, counters: list[tuple[str, str]]) -> None:
        if self.fail_spreads:
            self.fail_spreads -= 1
            raise StorageError("throttled")
        for counter in counters:
            if counter in self.counters:
                self.copies[counter] = dict(self.counters[counter])

    def query(
        self,
        account_id: str,
        granularity: Granularity,
        dimension: str,
        first: str,
        last: str,
        *,
        consistent: bool = False,
        keys: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        low, high = bucket_range(first, last)
        if keys is None:
            keys = self._used_keys(account_id) if dimension == KEY_DIMENSION else ()
        pks = read_partitions(account_id, granularity, dimension, keys)
        rows = [copy.deepcopy(row) for (key, sk), row in sorted(self.items.items()) if key in pks and low <= sk <= high]
        self.items_read += len(rows)
        return summed(rows) if len(pks) > 1 else rows

    def cells(
        self,
        account_id: str,
        granularity: Granularity,
        dimension: str,
        value: str,
        buckets: list[str],
        *,
        consistent: bool = False,
    ) -> list[dict[str, Any]]:
        pks = read_partitions(account_id, granularity, dimension, [value])
        keys = [(pk, cell_sk(bucket, value)) for pk in pks for bucket in buckets]
        self.items_read += len(keys)
        rows = [copy.deepcopy(self.items[key]) for key in keys if key in self.items]
        return summed(rows) if len(pks) > 1 else rows

    def last_used(self, account_id: str) -> dict[str, str]:
        return {key_id: at for (account, key_id), at in self.uses.items() if account == account_id}

    def admin_last_used(self, account_id: str) -> dict[str, str]:
        return {key_id: at for (account, key_id), at in self.admin_uses.items() if account == account_id}

    def raise_last_use(self, use: LastUse) -> None:
        uses = self.admin_uses if use.admin else self.uses
        known = uses.get((use.account_id, use.key_id))
        uses[(use.account_id, use.key_id)] = max(known or use.at, use.at)

    def _used_keys(self, account_id: str) -> dict[str, str]:
        """``last_used``, read (and counted) as the store reads it before the key dimension's shards."""
        used = self.last_used(account_id)
        self.items_read += len(used)
        return used

    def intermediate_from(self, account_id: str) -> datetime | None:
        self.items_read += 1
        return self.complete_from.get(account_id)

    def start_intermediate(self, account_id: str, since: datetime) -> None:
        self.complete_from.setdefault(account_id, since)

    def changed_from(self, account_id: str, change: Change) -> datetime | None:
        return self.changes.get((account_id, change))

    def start_change(self, account_id: str, change: Change, since: datetime) -> None:
        self.changes.setdefault((account_id, change), since)

    def has_rollups(self, account_id: str) -> bool:
        return any(pk == partition(account_id, "month", "total") for pk, _ in self.items)

    def replace_counters(self, row: RollupUpdate, seen: Counters | None) -> bool:
        held = self.items.get((row.pk, row.sk))
        if (held is None) != (seen is None) or (held is not None and seen is not None and not _holds(held, seen)):
            return False
        expiry = {"expires_at": row.expires_at} if row.expires_at is not None else {}
        cell = {"bucket": row.bucket, "dimension": row.dimension, "value": row.value}
        self.items[(row.pk, row.sk)] = {**(held or {}), **row.deltas, **expiry, **cell}
        return True

    def move_intermediate(self, account_id: str, seen: datetime, since: datetime) -> None:
        if self.complete_from.get(account_id) == seen:
            self.complete_from[account_id] = since

    def move_change(self, account_id: str, change: Change, seen: datetime, since: datetime) -> None:
        if self.changes.get((account_id, change)) == seen:
            self.changes[(account_id, change)] = since


def _holds(row: dict[str, Any], seen: Counters) -> bool:
    return row["requests"] == seen.requests and row.get("errors", 0) == seen.errors


class InMemoryJobs:
    """The ExportJobsTable's conditions: an attempt writes only while the job is its own (and, for
    its end and slices, running); a slice's run is recorded once."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}

    def create(self, job: dict[str, Any]) -> None:
        assert job["job_id"] not in self.jobs
        self.jobs[job["job_id"]] = dict(job)

    def get(self, job_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.jobs[job_id]) if job_id in self.jobs else None

    def claim(self, job_id: str, now: str) -> str | None:
        job = self.jobs.get(job_id)
        if job is None or job["status"] not in ("queued", "running"):
            return None
        attempt = f"attempt-{job.get('attempts', 0) + 1}"
        job |= {"status": "running", "attempt_id": attempt, "rows": 0, "attempts": job.get("attempts", 0) + 1}
        return attempt

    def _mine(self, job_id: str, attempt: str, *, running: bool = True) -> dict[str, Any] | None:
        job = self.jobs[job_id]
        if job.get("attempt_id") != attempt or (running and job["status"] != "running"):
            return None
        return job

    def progress(self, job_id: str, attempt: str, rows: int, now: str, total: int | None = None) -> bool:
        job = self._mine(job_id, attempt, running=False)
        if job is not None:
            job["rows"] = rows
            if total is not None:
                job["total_rows"] = total
        return job is not None

    def finish(self, job_id: str, attempt: str, fields: dict[str, Any]) -> bool:
        job = self._mine(job_id, attempt)
        if job is not None:
            job |= copy.deepcopy(fields)
        return job is not None

    def release(self, job_id: str, attempt: str, error: str, now: str) -> None:
        job = self._mine(job_id, attempt, running=False)
        if job is not None:
            job |= {"status": "queued", "last_error": error}

    def plan_slices(self, job_id: str, attempt: str, upload_id: str, cuts: list[str], now: str) -> bool:
        return self.finish(job_id, attempt, {"upload_id": upload_id, "cuts": cuts, "slices_recorded": 0})

    def slice_progress(self, job_id: str, attempt: str, index: int, rows: int, now: str) -> bool:
        return self.finish(job_id, attempt, {slice_rows_attribute(index): rows})

    def record_slice(self, job_id: str, attempt: str, index: int, run: dict[str, Any], now: str) -> int | None:
        job = self._mine(job_id, attempt)
        if job is None or slice_attribute(index) in job:
            return None
        job[slice_attribute(index)] = copy.deepcopy(run)
        job["slices_recorded"] += 1
        return int(job["slices_recorded"])

    def fail_slice(self, job_id: str, attempt: str, index: int, error: str, now: str) -> bool:
        job = self._mine(job_id, attempt)
        if job is None or slice_attribute(index) in job:
            return False
        job |= {"status": "failed", "error": error}
        return True


class InMemoryQueue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.sent.append(copy.deepcopy(message))

    def send_batch(self, messages: list[dict[str, Any]]) -> None:
        self.sent.extend(copy.deepcopy(messages))


class InMemoryFiles:
    """S3's multipart rules: an object appears only on completion, of the parts named there (each
    as last uploaded, matching its ETag, all but the last at least ``min_part_size``), once.
    ``fail_after_writes`` breaks the next whole-file upload midway; ``fail_part_uploads`` makes the
    next N part uploads fail."""

    def __init__(self, *, part_size: int = 8192, min_part_size: int = 4096) -> None:
        self.objects: dict[str, bytes] = {}
        self.aborted = 0
        self.fail_after_writes: int | None = None
        self.fail_part_uploads = 0
        self.part_size, self.min_part_size = part_size, min_part_size
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.started = 0
        self.part_uploads = 0

    def writer(self, key: str, content_type: str) -> Any:
        files = self

        class Writer:
            def __init__(self) -> None:
                self.data = bytearray()
                self.writes = 0

            def write(self, data: bytes) -> None:
                if files.fail_after_writes is not None and self.writes >= files.fail_after_writes:
                    files.fail_after_writes = None
                    raise StorageError("S3 went away")
                self.writes += 1
                self.data += data

            def complete(self) -> None:
                files.objects[key] = bytes(self.data)

            def abort(self) -> None:
                files.aborted += 1

        return Writer()

    def start_upload(self, key: str, content_type: str) -> str:
        self.started += 1
        upload_id = f"upload-{self.started}"
        self.uploads[upload_id] = {}
        return upload_id

    def part_writer(self, key: str, upload_id: str, first_part: int, last_part: int) -> S3PartWriter:
        return S3PartWriter(
            self, key, upload_id, first_part, last_part, part_size=self.part_size, min_part_size=self.min_part_size
        )

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        if self.fail_part_uploads:
            self.fail_part_uploads -= 1
            raise StorageError("S3 went away")
        if upload_id not in self.uploads:
            raise StorageError("NoSuchUpload")
        self.part_uploads += 1
        self.uploads[upload_id][number] = bytes(body)
        return _etag(body)

    def complete_upload(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        if upload_id not in self.uploads:
            assert key in self.objects, "completing an upload that was aborted"
            return
        uploaded = self.uploads[upload_id]
        numbers = [part["PartNumber"] for part in parts]
        assert numbers == sorted(set(numbers)), numbers
        bodies = [uploaded[number] for number in numbers]
        assert [part["ETag"] for part in parts] == [_etag(body) for body in bodies], "InvalidPart"
        assert all(len(body) >= self.min_part_size for body in bodies[:-1]), "EntityTooSmall"
        self.objects[key] = b"".join(bodies)
        del self.uploads[upload_id]

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)
        self.aborted += 1


def _etag(body: bytes) -> str:
    return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'
