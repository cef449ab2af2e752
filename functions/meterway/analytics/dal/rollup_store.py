"""The RollupsTable: counters per cell (see ``rollups_table``), and each key's last use.

A record is counted in two parts (``Part``): the account's shared cells and balance, and its
key's cells and counters. Each part is added in a transaction together with a marker item per
part, put on the condition that the marker is new, and with what the parts add to their keys' and
accounts' counters in the KeysTable (their spend, tokens, and the release of what they held in
flight). A stream batch delivered twice, or retried after a partial failure, therefore never
counts a part twice, in the rollups or in the counters. The key part's marker is the one the
versions before the parts wrote for the whole record; an account part that such a version may
have counted (``Part.legacy``) also checks that this marker is not one of theirs.

A key's last use is raised, never lowered, by a conditional write of its own before that
transaction: repeating it is harmless, so a batch retried after it changes nothing more. A
container raises a key's last use at most once a minute (``LAST_USE_EVERY``): the value is then
accurate to the minute, and a busy account's ``last-used`` partition takes a write per key and
container a minute instead of one per key and batch.

``items_read`` counts the items the reads ask for: those a Query returns, and every key a
BatchGetItem or GetItem asks for, found or not (DynamoDB bills a missing item as a read too).
"""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Protocol

from meterway.accounts.dal import counter_copies
from meterway.accounts.models import CounterDelta, ttl_attribute
from meterway.analytics.dal import rollups_table
from meterway.analytics.models import COUNTERS, Change, Counters, LastUse, Part, RollupUpdate
from meterway.core.aws import AwsResource, deserialize, serialize
from meterway.core.clock import Granularity, parse_utc_iso, utc_iso, utc_now
from meterway.core.dynamo import TransactionCancelled, Update, batch_get, storage_errors, transact, update_if
from meterway.core.errors import StorageError

UNAVAILABLE = "The rollups table is unavailable; try again."
# Longer than the stream's 24-hour retention: no redelivery can come after the marker expires.
MARKER_TTL = timedelta(days=3)
# The key dimension's shards read at once (boto3's clients are thread-safe).
SHARD_READERS = 16
# ``created_at`` up to the minute: a key's last use is raised once per such prefix and container.
LAST_USE_EVERY = len("2026-12-03T05:31")
# The keys whose last use a container remembers raising; it forgets them all past this many.
REMEMBERED_USES = 10_000


class AlreadyCounted(Exception):
    """Some records of a write were counted before: nothing of that write was added."""

    def __init__(self, request_ids: set[str]):
        super().__init__(f"{len(request_ids)} records already counted")
        self.request_ids = request_ids


class RollupStore(Protocol):
    def add(
        self,
        parts: list[Part],
        updates: list[RollupUpdate],
        uses: list[LastUse],
        counters: list[CounterDelta] | None = None,
    ) -> None:
        """Count ``parts`` (all of one kind) once by adding ``updates`` (their merged rollup
        counters) and ``counters`` (their merged key and account counters), all or nothing, after
        raising each key's last use to ``uses``. Raises ``AlreadyCounted`` with the request ids of
        the parts counted before."""

    def spread_copies(self, counters: list[tuple[str, str]]) -> None:
        """Set the read copies of ``counters`` (``pk``, ``sk``) that have them (spend counters,
        and balances of accounts with credit) to the counters as they stand, never to an older
        version. Raises ``StorageError`` when some could not be set."""

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
        """Rows of buckets ``first``..``last`` (labels, inclusive): ``bucket``, ``value`` and counters.

        For the ``key`` dimension, ``keys`` are the keys whose shards are read (rows of other keys
        may come with them); by default every key the account has used (``last_used``)."""

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
        """The rows of one ``value`` in ``buckets`` (labels) that exist, as ``query`` gives them."""

    def last_used(self, account_id: str) -> dict[str, str]:
        """When each key of the account was last used (``created_at`` of its newest record)."""

    def admin_last_used(self, account_id: str) -> dict[str, str]:
        """When each admin key of the account last called the management API (to the minute)."""

    def raise_last_use(self, use: LastUse) -> None:
        """Raise the key's last use to ``use.at``, never lower; at most once a minute a key."""

    def intermediate_from(self, account_id: str) -> datetime | None:
        """From when the account's in-between rows are complete; None until that was recorded."""

    def start_intermediate(self, account_id: str, since: datetime) -> None:
        """Record ``since`` as that start, unless one is recorded already."""

    def has_rollups(self, account_id: str) -> bool:
        """Whether any record of the account was counted."""

    def replace_counters(self, row: RollupUpdate, seen: Counters | None) -> bool:
        """Set the counters of ``row`` to its ``deltas`` (whole counters here, not increments), if
        its requests and errors are still those of ``seen`` (None: if the row does not exist);
        False when they were not."""

    def move_intermediate(self, account_id: str, seen: datetime, since: datetime) -> None:
        """Record ``since`` as the in-between rows' start, if it is still ``seen``."""

    def changed_from(self, account_id: str, change: Change) -> datetime | None:
        """From when every record of the account is counted as ``change`` says (in two parts, or
        with its failed requests as errors); None until recorded."""

    def start_change(self, account_id: str, change: Change, since: datetime) -> None:
        """Record ``since`` as that start, unless one is recorded already."""

    def move_change(self, account_id: str, change: Change, seen: datetime, since: datetime) -> None:
        """Record ``since`` as the change's start, if it is still ``seen``."""


class DynamoRollupStore(AwsResource):
    """The RollupsTable; the key and account counters are in the KeysTable (``counters_table``)."""

    def __init__(self, table_name: str, client: Any | None = None, *, counters_table: str | None = None):
        super().__init__(client)
        self._table = table_name
        self._counters_table = counters_table
        self.items_read = 0
        # The minute (``LAST_USE_EVERY``) of each key's last use this container raised.
        self._raised: dict[tuple[str, str], str] = {}
        # Each account's start of each change, once read: it never changes once recorded.
        self._changed_from: dict[tuple[str, Change], datetime] = {}

    def add(
        self,
        parts: list[Part],
        updates: list[RollupUpdate],
        uses: list[LastUse],
        counters: list[CounterDelta] | None = None,
    ) -> None:
        for use in uses:
            self.raise_last_use(use)
        markers = [self._marker(part) for part in parts]
        legacy = [part for part in parts if part.legacy and part.kind == "account"]
        checks = [self._not_counted_whole(part.request_id) for part in legacy]
        owners = [part.request_id for part in [*parts, *legacy]]
        adds = [*map(self._update, updates), *map(self._counter_update, counters or [])]
        try:
            transact(self.client, [*markers, *checks, *adds], UNAVAILABLE)
        except TransactionCancelled as cancelled:
            seen = cancelled.failed_indexes
            # Only the markers and their checks have conditions: any other failure is not a duplicate.
            if not cancelled.only_conditions or any(index >= len(owners) for index in seen):
                raise StorageError(UNAVAILABLE) from cancelled
            raise AlreadyCounted({owners[index] for index in seen}) from cancelled

    def spread_copies(self, counters: list[tuple[str, str]]) -> None:
        if self._counters_table is not None:
            counter_copies.spread(self.client, self._counters_table, counters)

    def raise_last_use(self, use: LastUse) -> None:
        minute = use.at[:LAST_USE_EVERY]
        if self._raised.get((use.account_id, use.key_id), "") >= minute:
            return  # raised to this minute already by this container
        request = Update(
            set={"last_used_at": use.at},
            condition="attribute_not_exists(last_used_at) OR last_used_at < :at",
            values={":at": use.at},
        ).request(self._table, rollups_table.last_used_key(use.account_id, use.key_id, admin=use.admin))
        update_if(self.client, request, UNAVAILABLE)  # refused when a later use is recorded already
        if len(self._raised) >= REMEMBERED_USES:
            self._raised.clear()
        self._raised[(use.account_id, use.key_id)] = minute

    def _marker(self, part: Part) -> dict[str, Any]:
        expires = int((utc_now() + MARKER_TTL).timestamp())
        item: dict[str, Any] = {"expires_at": expires}
        if part.kind == "key":
            item |= rollups_table.applied_marker_key(part.request_id) | {"part": "key"}
        elif part.kind in ("recount", "attribution"):
            # Kept: the record it moved (or added to its user and app cells) is older than any
            # redelivery, and the command run again must find it.
            item = rollups_table.recount_marker_key(part.request_id, part.kind)
        else:
            item |= rollups_table.account_marker_key(part.request_id)
        return {
            "Put": {
                "TableName": self._table,
                "Item": serialize(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _not_counted_whole(self, request_id: str) -> dict[str, Any]:
        """The check that no version before the parts counted the record: its marker has no ``part``."""
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": serialize(rollups_table.applied_marker_key(request_id)),
                "ConditionExpression": "attribute_not_exists(pk) OR attribute_exists(part)",
            }
        }

    def _update(self, update: RollupUpdate) -> dict[str, Any]:
        # Only the counters: the bucket and the value are read back from the sort key, and every
        # clause costs (notably in moto, where the local stack's rollups are written).
        expires = {"expires_at": update.expires_at} if update.expires_at is not None else {}
        return {
            "Update": Update(add=update.deltas, set=expires).request(self._table, {"pk": update.pk, "sk": update.sk})
        }

    def _counter_update(self, counter: CounterDelta) -> dict[str, Any]:
        if self._counters_table is None:
            raise StorageError("The aggregator has no keys table to add the counters to.")
        # Each change has a new version: the copies (``spread_copies``) never go back to an older one.
        update = Update(add={**counter.deltas, "version": 1}, set_if_absent=ttl_attribute(counter.expires_at))
        return {"Update": update.request(self._counters_table, {"pk": counter.pk, "sk": counter.sk})}

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
        low, high = rollups_table.bucket_range(first, last)
        # The key dimension's shards that hold cells: by default those of the keys with a recorded use.
        if keys is None:
            keys = self.last_used(account_id) if dimension == rollups_table.KEY_DIMENSION else ()
        partitions = rollups_table.read_partitions(account_id, granularity, dimension, keys)

        def read(pk: str) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            with storage_errors(UNAVAILABLE):
                pages = self.client.get_paginator("query").paginate(
                    TableName=self._table,
                    KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
                    ExpressionAttributeValues=serialize({":pk": pk, ":low": low, ":high": high}),
                    ProjectionExpression="sk, " + ", ".join(COUNTERS),
                    ConsistentRead=consistent,
                )
                for page in pages:
                    rows.extend(_row(deserialize(item)) for item in page.get("Items", []))
            return rows

        if len(partitions) == 1:
            rows = read(partitions[0])
        else:  # the key dimension's shards, at once
            with ThreadPoolExecutor(SHARD_READERS) as pool:
                rows = [row for shard in pool.map(read, partitions) for row in shard]
        self.items_read += len(rows)
        return summed(rows) if len(partitions) > 1 else rows

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
        partitions = rollups_table.read_partitions(account_id, granularity, dimension, [value])
        keys = [{"pk": pk, "sk": rollups_table.cell_sk(bucket, value)} for pk in partitions for bucket in buckets]
        self.items_read += len(keys)
        projection = "sk, " + ", ".join(COUNTERS)
        items = batch_get(
            self.client, self._table, keys, UNAVAILABLE, ProjectionExpression=projection, ConsistentRead=consistent
        )
        rows = [_row(item) for item in items]
        return summed(rows) if len(partitions) > 1 else rows

    def intermediate_from(self, account_id: str) -> datetime | None:
        self.items_read += 1
        with storage_errors(UNAVAILABLE):
            item = self.client.get_item(
                TableName=self._table, Key=serialize(rollups_table.intermediate_key(account_id))
            )
        since = deserialize(item["Item"]).get("complete_from") if "Item" in item else None
        return parse_utc_iso(since) if since else None

    def start_intermediate(self, account_id: str, since: datetime) -> None:
        request = Update(set_if_absent={"complete_from": utc_iso(since)}).request(
            self._table, rollups_table.intermediate_key(account_id)
        )
        with storage_errors(UNAVAILABLE):
            self.client.update_item(**request)

    def replace_counters(self, row: RollupUpdate, seen: Counters | None) -> bool:
        values: dict[str, Any] = {}
        if seen is None:
            condition = "attribute_not_exists(pk)"
        else:
            # Rows written before the errors were counted apart have no ``errors``.
            errors = "errors = :errors" if seen.errors else "(attribute_not_exists(errors) OR errors = :errors)"
            condition = f"requests = :requests AND {errors}"
            values = {":requests": seen.requests, ":errors": seen.errors}
        expiry = {"expires_at": row.expires_at} if row.expires_at is not None else {}
        update = Update(set={**row.deltas, **expiry}, condition=condition, values=values)
        request = update.request(self._table, {"pk": row.pk, "sk": row.sk})
        return update_if(self.client, request, UNAVAILABLE) is not None

    def move_intermediate(self, account_id: str, seen: datetime, since: datetime) -> None:
        self._move(rollups_table.intermediate_key(account_id), seen, since)

    def move_change(self, account_id: str, change: Change, seen: datetime, since: datetime) -> None:
        self._move(rollups_table.change_key(account_id, change), seen, since)
        self._changed_from.pop((account_id, change), None)

    def _move(self, key: dict[str, str], seen: datetime, since: datetime) -> None:
        request = Update(
            set={"complete_from": utc_iso(since)}, condition="complete_from = :seen", values={":seen": utc_iso(seen)}
        ).request(self._table, key)
        update_if(self.client, request, UNAVAILABLE)  # refused when moved already

    def changed_from(self, account_id: str, change: Change) -> datetime | None:
        if (account_id, change) in self._changed_from:
            return self._changed_from[(account_id, change)]
        self.items_read += 1
        key = rollups_table.change_key(account_id, change)
        with storage_errors(UNAVAILABLE):
            item = self.client.get_item(TableName=self._table, Key=serialize(key))
        since = deserialize(item["Item"]).get("complete_from") if "Item" in item else None
        if since is None:
            return None
        self._changed_from[(account_id, change)] = parse_utc_iso(since)
        return self._changed_from[(account_id, change)]

    def start_change(self, account_id: str, change: Change, since: datetime) -> None:
        request = Update(set_if_absent={"complete_from": utc_iso(since)}).request(
            self._table, rollups_table.change_key(account_id, change)
        )
        with storage_errors(UNAVAILABLE):
            self.client.update_item(**request)

    def has_rollups(self, account_id: str) -> bool:
        # Every counted record adds to its month's total row.
        with storage_errors(UNAVAILABLE):
            page = self.client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=serialize({":pk": rollups_table.partition(account_id, "month", "total")}),
                Limit=1,
            )
        return bool(page.get("Items"))

    def last_used(self, account_id: str) -> dict[str, str]:
        return self._uses(rollups_table.last_used_pk(account_id))

    def admin_last_used(self, account_id: str) -> dict[str, str]:
        return self._uses(rollups_table.admin_used_pk(account_id))

    def _uses(self, pk: str) -> dict[str, str]:
        with storage_errors(UNAVAILABLE):
            pages = self.client.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=serialize({":pk": pk}),
                ConsistentRead=True,
            )
            items = [deserialize(item) for page in pages for item in page.get("Items", [])]
        self.items_read += len(items)
        return {item["sk"]: item["last_used_at"] for item in items}


def summed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the same bucket and value added up (a key's cells in its shard and in the partition
    written before the shards), in the order of ``bucket``, then ``value``."""
    sums: dict[tuple[str, str], Counters] = {}
    for row in rows:
        sums.setdefault((row["bucket"], row["value"]), Counters()).add(row)
    return [
        {"bucket": bucket, "value": value, **counters.as_dict()} for (bucket, value), counters in sorted(sums.items())
    ]


def _row(item: dict[str, Any]) -> dict[str, Any]:
    """A rollup item with its bucket label and value, from its sort key."""
    item["bucket"], item["value"] = rollups_table.split_cell_sk(item.pop("sk"))
    return item
