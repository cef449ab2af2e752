"""The RollupsTable: counters per ``<account>#<granularity>#<dimension>`` × ``<bucket>#<value>``.

A ledger record's counters are added in one transaction together with a marker item for its
request id, put on the condition that the marker is new. A stream batch delivered twice, or
retried after a partial failure, therefore never counts a request twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from meterway.dal.aws import AwsResource, deserialize, serialize
from meterway.errors import StorageError
from meterway.logic.rollups import COUNTERS, Granularity, RollupUpdate, partition

# Longer than the stream's 24-hour retention: no redelivery can come after the marker expires.
MARKER_TTL = timedelta(days=3)


class RollupStore(Protocol):
    def apply(self, request_id: str, updates: list[RollupUpdate]) -> bool:
        """Add one record's counters, once; False when that request was already counted."""

    def query(
        self, account_id: str, granularity: Granularity, dimension: str, first: str, last: str
    ) -> list[dict[str, Any]]:
        """Rows of buckets ``first``..``last`` (labels, inclusive): ``bucket``, ``value`` and counters."""


def bucket_range(first: str, last: str) -> tuple[str, str]:
    """Sort-key bounds for labels first..last: ``$`` sorts right after ``#``, so ``<last>$`` is
    above every ``<last>#<value>``."""
    return f"{first}#", f"{last}$"


class DynamoRollupStore(AwsResource):
    def __init__(self, table_name: str, client: Any | None = None):
        super().__init__(client)
        self._table = table_name
        self.items_read = 0

    def apply(self, request_id: str, updates: list[RollupUpdate]) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        expires = int((datetime.now(UTC) + MARKER_TTL).timestamp())
        marker = {
            "Put": {
                "TableName": self._table,
                "Item": serialize({"pk": f"APPLIED#{request_id}", "sk": "#", "expires_at": expires}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        try:
            self.client.transact_write_items(TransactItems=[marker, *map(self._update, updates)])
        except ClientError as exc:
            if _already_applied(exc):
                return False
            raise StorageError("The rollups table did not accept the update.") from exc
        except BotoCoreError as exc:
            raise StorageError("The rollups table is unreachable.") from exc
        return True

    def _update(self, update: RollupUpdate) -> dict[str, Any]:
        values: dict[str, Any] = {f":{name}": value for name, value in update.deltas.items()}
        values |= {":bucket": update.bucket, ":dimension": update.dimension, ":value": update.value}
        expression = "ADD " + ", ".join(f"{name} :{name}" for name in update.deltas)
        expression += " SET #bucket = :bucket, dimension = :dimension, #value = :value"
        if update.expires_at is not None:
            values[":expires_at"] = update.expires_at
            expression += ", expires_at = :expires_at"
        return {
            "Update": {
                "TableName": self._table,
                "Key": serialize({"pk": update.pk, "sk": update.sk}),
                "UpdateExpression": expression,
                "ExpressionAttributeNames": {"#value": "value", "#bucket": "bucket"},
                "ExpressionAttributeValues": serialize(values),
            }
        }

    def query(
        self, account_id: str, granularity: Granularity, dimension: str, first: str, last: str
    ) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        low, high = bucket_range(first, last)
        rows: list[dict[str, Any]] = []
        try:
            pages = self.client.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
                ExpressionAttributeValues=serialize(
                    {":pk": partition(account_id, granularity, dimension), ":low": low, ":high": high}
                ),
                ProjectionExpression="#bucket, #value, " + ", ".join(COUNTERS),
                ExpressionAttributeNames={"#value": "value", "#bucket": "bucket"},
            )
            for page in pages:
                self.items_read += len(page.get("Items", []))
                rows.extend(deserialize(item) for item in page.get("Items", []))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The rollups table is unavailable; try again.") from exc
        return rows


def _already_applied(exc: Any) -> bool:
    error = exc.response.get("Error", {})
    if error.get("Code") != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons") or []
    if reasons:
        return reasons[0].get("Code") == "ConditionalCheckFailed"
    # Some endpoints put the reasons only in the message: "[ConditionalCheckFailed, None, ...]".
    return "[ConditionalCheckFailed" in error.get("Message", "")
