"""Export jobs in the ExportJobsTable, keyed by ``job_id``.

A worker claims a job with a fresh attempt id; its progress and its end are written on the
condition that the attempt id is still its own, so a duplicate delivery running the same job at
the same time cannot overwrite the other's result.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from meterway.core.aws import AwsResource, deserialize, serialize
from meterway.core.dynamo import ConditionFailed, Update, storage_errors

UNAVAILABLE = "The export jobs table is unavailable."
_OWN_ATTEMPT = "attempt_id = :attempt"


class ExportJobStore(Protocol):
    def create(self, job: dict[str, Any]) -> None: ...

    def get(self, job_id: str) -> dict[str, Any] | None: ...

    def claim(self, job_id: str, now: str) -> str | None:
        """Start an attempt on a queued (or abandoned running) job; its attempt id, or None."""

    def progress(self, job_id: str, attempt: str, rows: int, now: str) -> bool: ...

    def finish(self, job_id: str, attempt: str, fields: dict[str, Any]) -> bool: ...

    def release(self, job_id: str, attempt: str, error: str, now: str) -> None:
        """Give a failed attempt back to the queue (``queued``) with its error kept for the record."""


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

    def progress(self, job_id: str, attempt: str, rows: int, now: str) -> bool:
        mine = Update(set={"rows": rows, "updated_at": now}, condition=_OWN_ATTEMPT, values={":attempt": attempt})
        return self._conditional(job_id, mine)

    def finish(self, job_id: str, attempt: str, fields: dict[str, Any]) -> bool:
        return self._conditional(job_id, Update(set=fields, condition=_OWN_ATTEMPT, values={":attempt": attempt}))

    def release(self, job_id: str, attempt: str, error: str, now: str) -> None:
        back = {"status": "queued", "last_error": error, "updated_at": now}
        self._conditional(job_id, Update(set=back, condition=_OWN_ATTEMPT, values={":attempt": attempt}))

    def _conditional(self, job_id: str, update: Update) -> bool:
        """Apply ``update`` to an existing job if its condition holds; False when it does not."""
        request = update.request(self._table, {"job_id": job_id})
        request["ConditionExpression"] = f"attribute_exists(job_id) AND ({update.condition})"
        try:
            with storage_errors(UNAVAILABLE):
                self.client.update_item(**request)
        except ConditionFailed:
            return False
        return True

    @staticmethod
    def _key(job_id: str) -> dict[str, Any]:
        return serialize({"job_id": job_id})
