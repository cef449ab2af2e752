"""An account's prepaid credit in the KeysTable.

``pk = ACCOUNT#<account>``: ``sk = BALANCE`` holds ``credits_usd`` (the sum of top-ups),
``spent_usd`` and ``inflight`` (both kept by the proxy); ``sk = TOPUP#<created_at>#<id>`` is one
top-up. A top-up and its addition to ``credits_usd`` are written in one transaction.
"""

from __future__ import annotations

from typing import Any, Protocol

from meterway.dal.aws import AwsResource, deserialize, serialize
from meterway.dal.transactions import TransactionCancelled, transact
from meterway.errors import StorageError

UNAVAILABLE = "The balance store is unavailable; try again."


class BalanceStore(Protocol):
    def get(self, account_id: str) -> dict[str, Any] | None:
        """The account's BALANCE item, read consistently; None before any credit or spend."""

    def topups(self, account_id: str, limit: int) -> list[dict[str, Any]]:
        """The account's latest top-ups, newest first."""

    def add_topup(self, account_id: str, topup: dict[str, Any]) -> None:
        """Record a top-up (``topup_id``, ``created_at``, ``amount_usd``…) and add it to the credits."""


def balance_key(account_id: str) -> dict[str, str]:
    return {"pk": f"ACCOUNT#{account_id}", "sk": "BALANCE"}


class DynamoBalanceStore(AwsResource):
    def __init__(self, table_name: str, client: Any | None = None):
        super().__init__(client)
        self._table = table_name

    def get(self, account_id: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_item(
                TableName=self._table, Key=serialize(balance_key(account_id)), ConsistentRead=True
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(UNAVAILABLE) from exc
        item = response.get("Item")
        return deserialize(item) if item else None

    def topups(self, account_id: str, limit: int) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :topup)",
                ExpressionAttributeValues=serialize({":pk": f"ACCOUNT#{account_id}", ":topup": "TOPUP#"}),
                ScanIndexForward=False,
                Limit=limit,
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(UNAVAILABLE) from exc
        return [deserialize(item) for item in response.get("Items", [])]

    def add_topup(self, account_id: str, topup: dict[str, Any]) -> None:
        """Record a top-up and add it to the credit. The proxy adds every request's cost to
        ``spent_usd`` from the start, so the first top-up sets the credit to what was spent so
        far plus its amount: the balance (credit − spent) then starts at that amount."""
        item = {
            "pk": f"ACCOUNT#{account_id}",
            "sk": f"TOPUP#{topup['created_at']}#{topup['topup_id']}",
            "account_id": account_id,
            **topup,
        }
        record = {
            "Put": {
                "TableName": self._table,
                "Item": serialize(item),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        later = ("ADD credits_usd :amount", "attribute_exists(credits_usd)")
        first = ("SET credits_usd = if_not_exists(spent_usd, :zero) + :amount", "attribute_not_exists(credits_usd)")
        for expression, condition in (later, first):
            credit = {
                "Update": {
                    "TableName": self._table,
                    "Key": serialize(balance_key(account_id)),
                    "UpdateExpression": expression,
                    "ConditionExpression": condition,
                    "ExpressionAttributeValues": serialize(
                        {":amount": topup["amount_usd"]} | ({":zero": 0} if ":zero" in expression else {})
                    ),
                }
            }
            try:
                transact(self.client, [record, credit], UNAVAILABLE)
                return
            except TransactionCancelled as exc:
                if exc.failed(0) is not None:
                    raise StorageError("The top-up could not be recorded; try again.") from exc
        raise StorageError("The top-up could not be recorded; try again.")
