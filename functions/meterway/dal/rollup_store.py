"""The RollupsTable: counters per ``<account>#<granularity>#<dimension>`` × ``<bucket>#<value>``.

A ledger record's counters are added in one transaction together with a marker item for its
request id, put on the condition that the marker is new. A stream batch delivered twice, or
retried after a partial failure, therefore never counts a request twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from meterway.dal.aws import AwsResource, deserialize, serialize
from meterway.errors import StorageError
from meterway.logic.rollups import COUNTERS, Contribution, Granularity, RollupUpdate, merge, partition, plan_chunks

# Longer than the stream's 24-hour retention: no redelivery can come after the marker expires.
MARKER_TTL = timedelta(days=3)


@dataclass(slots=True)
class BatchOutcome:
    """Request ids of a batch: newly counted, counted before (skipped), or not written (retry)."""

    applied: set[str] = field(default_factory=set)
    duplicates: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)


class RollupStore(Protocol):
    def apply(self, request_id: str, updates: list[RollupUpdate]) -> bool:
        """Add one record's counters, once; False when that request was already counted."""

    def apply_batch(self, contributions: list[Contribution]) -> BatchOutcome:
        """Add many records' counters, each exactly once, merged into as few writes as fit."""

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
        outcome = self.apply_batch([Contribution(request_id, updates)])
        if outcome.failed:
            raise StorageError("The rollups table did not accept the update.")
        return request_id in outcome.applied

    def apply_batch(self, contributions: list[Contribution]) -> BatchOutcome:
        outcome = BatchOutcome()
        for chunk in plan_chunks(contributions):
            self._apply_chunk(chunk, outcome)
        return outcome

    def _apply_chunk(self, chunk: list[Contribution], outcome: BatchOutcome) -> None:
        """One transaction: every record's marker, then the merged counters. Records already
        counted make it fail; they are dropped and the rest is tried again."""
        from botocore.exceptions import BotoCoreError, ClientError

        while chunk:
            markers = [self._marker(contribution.request_id) for contribution in chunk]
            try:
                self.client.transact_write_items(TransactItems=[*markers, *map(self._update, merge(chunk))])
            except ClientError as exc:
                seen = _counted_before(exc, len(chunk))
                if not seen:
                    outcome.failed |= {contribution.request_id for contribution in chunk}
                    return
                outcome.duplicates |= {chunk[index].request_id for index in seen}
                chunk = [contribution for index, contribution in enumerate(chunk) if index not in seen]
                continue
            except BotoCoreError:
                outcome.failed |= {contribution.request_id for contribution in chunk}
                return
            outcome.applied |= {contribution.request_id for contribution in chunk}
            return

    def _marker(self, request_id: str) -> dict[str, Any]:
        expires = int((datetime.now(UTC) + MARKER_TTL).timestamp())
        return {
            "Put": {
                "TableName": self._table,
                "Item": serialize({"pk": f"APPLIED#{request_id}", "sk": "#", "expires_at": expires}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _update(self, update: RollupUpdate) -> dict[str, Any]:
        # Only the counters: the bucket and the value are read back from the sort key, and every
        # clause costs (notably in moto, where the local stack's rollups are written).
        values: dict[str, Any] = {f":{name}": value for name, value in update.deltas.items()}
        expression = "ADD " + ", ".join(f"{name} :{name}" for name in update.deltas)
        if update.expires_at is not None:
            values[":expires_at"] = update.expires_at
            expression += " SET expires_at = :expires_at"
        return {
            "Update": {
                "TableName": self._table,
                "Key": serialize({"pk": update.pk, "sk": update.sk}),
                "UpdateExpression": expression,
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
                ProjectionExpression="sk, " + ", ".join(COUNTERS),
            )
            for page in pages:
                self.items_read += len(page.get("Items", []))
                rows.extend(_row(deserialize(item)) for item in page.get("Items", []))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The rollups table is unavailable; try again.") from exc
        return rows


def _row(item: dict[str, Any]) -> dict[str, Any]:
    """A rollup item with its bucket label and value, from ``sk = <bucket>#<value>``."""
    item["bucket"], _, item["value"] = item.pop("sk").partition("#")
    return item


def _counted_before(exc: Any, markers: int) -> set[int]:
    """Indices of the markers that already existed, from a cancelled transaction's reasons;
    empty when it failed for any other reason (throttling, a bad write)."""
    error = exc.response.get("Error", {})
    if error.get("Code") != "TransactionCanceledException":
        return set()
    reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons") or []]
    if not reasons:
        # Some endpoints give the reasons only in the message: "... [ConditionalCheckFailed, None]".
        listed = error.get("Message", "").rpartition("[")[2].rstrip("]")
        reasons = [reason.strip() for reason in listed.split(",")]
    failed = {index for index, code in enumerate(reasons) if code not in (None, "None", "")}
    if not failed or any(index >= markers or reasons[index] != "ConditionalCheckFailed" for index in failed):
        return set()
    return failed
