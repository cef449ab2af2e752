"""Export jobs in the ExportJobsTable, keyed by ``job_id``.

A worker claims a job with a fresh attempt id; its progress and its end are written on the
condition that the attempt id is still its own, so a duplicate delivery running the same job at
the same time cannot overwrite the other's result.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from meterway.dal.aws import AwsResource, deserialize, serialize
from meterway.errors import StorageError


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
        self._call("put_item", Item=serialize(job), ConditionExpression="attribute_not_exists(job_id)")

    def get(self, job_id: str) -> dict[str, Any] | None:
        item = self._call("get_item", Key=self._key(job_id), ConsistentRead=True).get("Item")
        return deserialize(item) if item else None

    def claim(self, job_id: str, now: str) -> str | None:
        attempt = uuid.uuid4().hex
        done = self._conditional(
            job_id,
            "SET #status = :running, attempt_id = :attempt, #rows = :zero, updated_at = :now ADD attempts :one",
            "#status IN (:queued, :running)",
            {":running": "running", ":queued": "queued", ":attempt": attempt, ":zero": 0, ":now": now, ":one": 1},
        )
        return attempt if done else None

    def progress(self, job_id: str, attempt: str, rows: int, now: str) -> bool:
        return self._conditional(
            job_id,
            "SET #rows = :rows, updated_at = :now",
            "attempt_id = :attempt",
            {":rows": rows, ":now": now, ":attempt": attempt},
        )

    def finish(self, job_id: str, attempt: str, fields: dict[str, Any]) -> bool:
        names = {f"#f{index}": name for index, name in enumerate(fields)}
        values = {f":f{index}": value for index, value in enumerate(fields.values())} | {":attempt": attempt}
        expression = "SET " + ", ".join(f"#f{index} = :f{index}" for index in range(len(fields)))
        return self._conditional(job_id, expression, "attempt_id = :attempt", values, names)

    def release(self, job_id: str, attempt: str, error: str, now: str) -> None:
        self._conditional(
            job_id,
            "SET #status = :queued, last_error = :error, updated_at = :now",
            "attempt_id = :attempt",
            {":queued": "queued", ":error": error, ":now": now, ":attempt": attempt},
        )

    def _conditional(
        self,
        job_id: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> bool:
        from botocore.exceptions import ClientError

        condition = f"attribute_exists(job_id) AND ({condition})"
        # DynamoDB refuses names an expression does not use, so pass only the used ones.
        known = {"#status": "status", "#rows": "rows"} | (names or {})
        used = {alias: name for alias, name in known.items() if alias in update or alias in condition}
        try:
            self._call(
                "update_item",
                Key=self._key(job_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=serialize(values),
                **({"ExpressionAttributeNames": used} if used else {}),
            )
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    @staticmethod
    def _key(job_id: str) -> dict[str, Any]:
        return {"job_id": {"S": job_id}}

    def _call(self, operation: str, **arguments: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(TableName=self._table, **arguments)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The export jobs table is unavailable.") from exc
