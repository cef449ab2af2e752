"""An account's prepaid credit in the KeysTable (see ``keys_table``).

The ``BALANCE`` item holds ``credits_usd`` (the sum of top-ups) and ``spent_usd`` (added by the
aggregator as it counts the ledger's records); each ``TOPUP#`` item is one top-up. A top-up and its addition to
``credits_usd`` are written in one transaction.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from meterway.accounts.dal import counter_copies, keys_table
from meterway.core.aws import AwsResource, deserialize, serialize
from meterway.core.dynamo import TransactionCancelled, storage_errors, transact
from meterway.core.errors import StorageError
from meterway.core.observability import logger

UNAVAILABLE = "The balance store is unavailable; try again."
NOT_RECORDED = "The top-up could not be recorded; try again."


class BalanceStore(Protocol):
    def get(self, account_id: str) -> dict[str, Any] | None:
        """The account's BALANCE item, read consistently; None before any credit or spend."""

    def topups(self, account_id: str, limit: int) -> list[dict[str, Any]]:
        """The account's latest top-ups, newest first."""

    def topped_up(self, account_id: str) -> Decimal:
        """The sum of every top-up the account had (0 without any)."""

    def add_topup(self, account_id: str, topup: dict[str, Any]) -> None:
        """Record a top-up (``topup_id``, ``created_at``, ``amount_usd``…) and add it to the credits."""


class DynamoBalanceStore(AwsResource):
    def __init__(self, table_name: str, client: Any | None = None):
        super().__init__(client)
        self._table = table_name

    def get(self, account_id: str) -> dict[str, Any] | None:
        key = serialize(keys_table.balance_key(account_id))
        with storage_errors(UNAVAILABLE):
            response = self.client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        item = response.get("Item")
        return deserialize(item) if item else None

    def topups(self, account_id: str, limit: int) -> list[dict[str, Any]]:
        with storage_errors(UNAVAILABLE):
            response = self.client.query(
                TableName=self._table,
                **keys_table.account_items(account_id, keys_table.TOPUP_PREFIX),
                ScanIndexForward=False,
                Limit=limit,
            )
        return [deserialize(item) for item in response.get("Items", [])]

    def topped_up(self, account_id: str) -> Decimal:
        with storage_errors(UNAVAILABLE):
            pages = self.client.get_paginator("query").paginate(
                TableName=self._table,
                **keys_table.account_items(account_id, keys_table.TOPUP_PREFIX),
                ProjectionExpression="amount_usd",
                ConsistentRead=True,
            )
            return sum((deserialize(item)["amount_usd"] for page in pages for item in page["Items"]), Decimal(0))

    def add_topup(self, account_id: str, topup: dict[str, Any]) -> None:
        """Record a top-up and add it to the credit. The proxy adds every request's cost to
        ``spent_usd`` from the start, so the first top-up sets the credit to what was spent so
        far plus its amount: the balance (credit − spent) then starts at that amount."""
        key = keys_table.topup_key(account_id, topup["created_at"], topup["topup_id"])
        record = {
            "Put": {
                "TableName": self._table,
                "Item": serialize(key | {"account_id": account_id, **topup}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        # A new version, so that the balance's read copies take it (``counter_copies``).
        amount = {":amount": topup["amount_usd"], ":one": 1}
        later = ("ADD credits_usd :amount, version :one", "attribute_exists(credits_usd)", amount)
        first = (
            "SET credits_usd = if_not_exists(spent_usd, :zero) + :amount ADD version :one",
            "attribute_not_exists(credits_usd)",
            amount | {":zero": 0},
        )
        for expression, condition, values in (later, first):
            credit = {
                "Update": {
                    "TableName": self._table,
                    "Key": serialize(keys_table.balance_key(account_id)),
                    "UpdateExpression": expression,
                    "ConditionExpression": condition,
                    "ExpressionAttributeValues": serialize(values),
                }
            }
            try:
                transact(self.client, [record, credit], UNAVAILABLE)
            except TransactionCancelled as exc:
                if exc.failed(0) is not None:
                    raise StorageError(NOT_RECORDED) from exc
                continue
            self._spread(account_id)
            return
        raise StorageError(NOT_RECORDED)

    def _spread(self, account_id: str) -> None:
        """The balance's read copies take the new credit now rather than at the next count (until
        then, a copy that refuses is checked against the item anyway)."""
        balance = keys_table.balance_key(account_id)
        try:
            counter_copies.spread(self.client, self._table, [(balance["pk"], balance["sk"])])
        except StorageError:
            logger.warning("balance copies not set after a top-up; the next count sets them")
