"""Spend counters of the KeysTable read and seeded outside the hot path: a key's spend in its period
(``keys_table.spend_key``) and a member's under their budget (``keys_table.member_spend_key``), for
the management API's listings and for seeding a new budget."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from meterway.accounts.models import ttl_attribute
from meterway.core.aws import AwsResource
from meterway.core.dynamo import Update, batch_get, storage_errors
from meterway.core.money import to_decimal

UNAVAILABLE = "The keys table is unavailable; try again."


class SpendCounters(Protocol):
    def add(self, counter: dict[str, str], amount: Decimal, expires_at: int | None) -> None:
        """Add ``amount`` to a spend counter, as the aggregator does (a new ``version``)."""

    def spent(self, counters: list[dict[str, str]]) -> dict[tuple[str, str], Decimal]:
        """What each of ``counters`` holds, read consistently (absent: nothing counted yet)."""


class DynamoSpendCounters(AwsResource):
    def __init__(self, table_name: str, client: Any | None = None):
        super().__init__(client)
        self._table = table_name

    def add(self, counter: dict[str, str], amount: Decimal, expires_at: int | None) -> None:
        update = Update(add={"spent_usd": amount, "version": 1}, set_if_absent=ttl_attribute(expires_at))
        with storage_errors(UNAVAILABLE):
            self.client.update_item(**update.request(self._table, counter))

    def spent(self, counters: list[dict[str, str]]) -> dict[tuple[str, str], Decimal]:
        if not counters:
            return {}
        items = batch_get(self.client, self._table, counters, UNAVAILABLE, ConsistentRead=True)
        return {(item["pk"], item["sk"]): to_decimal(item.get("spent_usd")) for item in items}
