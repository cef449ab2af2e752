"""Export jobs in the ExportJobsTable, keyed by ``job_id``.

A worker claims a job with a fresh attempt id; its progress and its end are written on the
condition that the attempt id is still its own, so a duplicate delivery running the same job at
the same time cannot overwrite the other's result.

A request export fanned out over time slices keeps its plan on the job (``upload_id``, ``cuts``:
slice ``i`` is ``[cuts[i], cuts[i + 1])``) and, per slice, its progress (``slice_rows_<i>``) and
the run of parts it wrote (``slice_<i>``, recorded once), counted in ``slices_recorded``.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from meterway.core.aws import AwsResource, deserialize, serialize
from meterway.core.dynamo import Update, storage_errors, update_if

UNAVAILABLE = "The export jobs table is unavailable."
_OWN_ATTEMPT = "attempt_id = :attempt"
_OWN_RUNNING = "attempt_id = :attempt AND #status = :running"


class ExportJobStore(Protocol):
    def create(self, job: dict[str, Any]) -> None: ...

    def get(self, job_id: str) -> dict[str, Any] | None: ...

    def claim(self, job_id: str, now: str) -> str | None:
        """Start an attempt on a queued (or abandoned running) job; its attempt id, or None."""

    def progress(self, job_id: str, attempt: str, rows: int, now: str, total: int | None = None) -> bool:
        """Note the rows written (and the rows the job will write, when known) while the attempt
        owns the job."""

    def finish(self, job_id: str, attempt: str, fields: dict[str, Any]) -> bool:
        """Set ``fields`` (its end: ``succeeded`` or ``failed``) on the job while this attempt runs it."""

    def release(self, job_id: str, attempt: str, error: str, now: str) -> None:
        """Give a failed attempt back to the queue (``queued``) with its error kept for the record."""

    def plan_slices(self, job_id: str, attempt: str, upload_id: str, cuts: list[str], now: str) -> bool:
        """Keep the attempt's fan-out plan: the upload its slices write, and where the slices start."""

    def slice_progress(self, job_id: str, attempt: str, index: int, rows: int, now: str) -> bool: ...

    def record_slice(self, job_id: str, attempt: str, index: int, run: dict[str, Any], now: str) -> int | None:
        """Keep what slice ``index`` wrote, once: how many slices are recorded now; None when this one
        was recorded before or the attempt no longer runs the job."""

    def fail_slice(self, job_id: str, attempt: str, index: int, error: str, now: str) -> bool:
        """End the job ``failed`` because slice ``index`` could not be written (unless it was since)."""


class DynamoExportJobStore(AwsResource):
    def __init__(self, table_name: str, client: Any | None = None):
        super().__init__(client)
        self._table = table_name

    def create(self, job: dict[str, Any]) -> None:
        with storage_errors(UNAVAILABLE):
            self.client.put_item(
                TableName=self._table, Item=serialize(job), ConditionExpression="attribute_not_exists(job_id)"
            )

    def get(self, job_id: str) -> dict[str, Any] | None:
        with storage_errors(UNAVAILABLE):
            item = self.client.get_item(TableName=self._table, Key=self._key(job_id), ConsistentRead=True).get("Item")
        return deserialize(item) if item else None

    def claim(self, job_id: str, now: str) -> str | None:
        attempt = uuid.uuid4().hex
        claim = Update(
            set={"status": "running", "attempt_id": attempt, "rows": 0, "updated_at": now},
            add={"attempts": 1},
            condition="#status IN (:queued, :running)",
            values={":queued": "queued", ":running": "running"},
            names={"#status": "status"},
        )
        return attempt if self._conditional(job_id, claim) else None

    def progress(self, job_id: str, attempt: str, rows: int, now: str, total: int | None = None) -> bool:
        fields = {"rows": rows, "updated_at": now} | ({"total_rows": total} if total is not None else {})
        mine = Update(set=fields, condition=_OWN_ATTEMPT, values={":attempt": attempt})
        return self._conditional(job_id, mine)

    def finish(self, job_id: str, attempt: str, fields: dict[str, Any]) -> bool:
        return self._conditional(job_id, _while_running(attempt, fields))

    def release(self, job_id: str, attempt: str, error: str, now: str) -> None:
        back = {"status": "queued", "last_error": error, "updated_at": now}
        self._conditional(job_id, Update(set=back, condition=_OWN_ATTEMPT, values={":attempt": attempt}))

    def plan_slices(self, job_id: str, attempt: str, upload_id: str, cuts: list[str], now: str) -> bool:
        plan = {"upload_id": upload_id, "cuts": cuts, "slices_recorded": 0, "updated_at": now}
        return self._conditional(job_id, _while_running(attempt, plan))

    def slice_progress(self, job_id: str, attempt: str, index: int, rows: int, now: str) -> bool:
        return self._conditional(
            job_id, _while_running(attempt, {slice_rows_attribute(index): rows, "updated_at": now})
        )

    def record_slice(self, job_id: str, attempt: str, index: int, run: dict[str, Any], now: str) -> int | None:
        fields = {slice_attribute(index): run, "updated_at": now}
        updated = self._update(job_id, _unless_recorded(attempt, index, fields, add={"slices_recorded": 1}))
        return None if updated is None else int(updated["slices_recorded"])

    def fail_slice(self, job_id: str, attempt: str, index: int, error: str, now: str) -> bool:
        failed = {"status": "failed", "error": error, "updated_at": now}
        return self._update(job_id, _unless_recorded(attempt, index, failed)) is not None

    def _conditional(self, job_id: str, update: Update) -> bool:
        """Apply ``update`` to an existing job if its condition holds; False when it does not."""
        return self._update(job_id, update) is not None

    def _update(self, job_id: str, update: Update) -> dict[str, Any] | None:
        """Apply ``update`` to an existing job if its condition holds: the attributes it changed, or
        None when the condition does not hold."""
        request = update.request(self._table, {"job_id": job_id})
        request["ConditionExpression"] = f"attribute_exists(job_id) AND ({update.condition})"
        request["ReturnValues"] = "UPDATED_NEW"
        return update_if(self.client, request, UNAVAILABLE)

    @staticmethod
    def _key(job_id: str) -> dict[str, Any]:
        return serialize({"job_id": job_id})


def _while_running(attempt: str, fields: dict[str, Any]) -> Update:
    return Update(
        set=fields,
        condition=_OWN_RUNNING,
        values={":attempt": attempt, ":running": "running"},
        names={"#status": "status"},
    )


def _unless_recorded(attempt: str, index: int, fields: dict[str, Any], add: dict[str, Any] | None = None) -> Update:
    return Update(
        set=fields,
        add=add or {},
        condition=f"{_OWN_RUNNING} AND attribute_not_exists(#run)",
        values={":attempt": attempt, ":running": "running"},
        names={"#status": "status", "#run": slice_attribute(index)},
    )


def slice_attribute(index: int) -> str:
    """Where slice ``index``'s run is recorded on its job."""
    return f"slice_{index}"


def slice_rows_attribute(index: int) -> str:
    """Where slice ``index``'s progress is kept on its job."""
    return f"slice_rows_{index}"
