"""A key's counters and its account's credit in the KeysTable (see ``keys_table``).

One TransactWriteItems reserves a request: a condition check on the key's secret item (so a
disabled, deleted or expired key is refused on its next request, whatever a warm cache holds),
then a conditional add on each counter the reservation names. When a condition fails the store
says which one (``ReservationRefused.cause``); what the client is told is the logic's call.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from meterway.accounts.dal import keys_table
from meterway.accounts.models import Reservation, ttl_attribute
from meterway.core.aws import AwsResource, deserialize, serialize
from meterway.core.clock import utc_iso
from meterway.core.dynamo import TransactionCancelled, Update, storage_errors, transact

UNAVAILABLE = "The key store is unavailable; try again."
# DynamoDB's TTL removes counters once nothing reads them any more.
MINUTE_COUNTER_TTL = timedelta(days=1)
PERIOD_COUNTER_GRACE = timedelta(days=7)

Cause = Literal["key", "spend", "minute", "balance"]


class ReservationRefused(Exception):
    """A condition of the reservation failed; ``cause`` is the first that did, in this order: the
    key itself, its spend limit, its per-minute limits, the account's credit."""

    def __init__(self, cause: Cause):
        super().__init__(cause)
        self.cause: Cause = cause


class QuotaStore(Protocol):
    def reserve(self, reservation: Reservation, key_hash: str, now: datetime) -> None:
        """Hold one request on the counters of ``reservation``, all or none. Raises
        ``ReservationRefused`` when a limit or the key refuses it, ``Contention`` when it raced
        other reservations of the same key."""

    def counters(self, reservation: Reservation) -> dict[str, dict[str, Any]]:
        """The counters ``reservation`` names as they stand: ``spend``, ``minute`` and ``balance``
        items (empty where there is none yet)."""


class DynamoQuotaStore(AwsResource):
    def __init__(self, table_name: str, client: Any | None = None):
        super().__init__(client)
        self._table = table_name

    def reserve(self, reservation: Reservation, key_hash: str, now: datetime) -> None:
        causes, items = zip(*self._reserve_items(reservation, key_hash, now), strict=True)
        try:
            transact(self.client, list(items), UNAVAILABLE)
        except TransactionCancelled as cancelled:
            raise ReservationRefused(causes[cancelled.failed_indexes[0]]) from cancelled

    def _reserve_items(self, reservation: Reservation, key_hash: str, now: datetime) -> list[tuple[Cause, Any]]:
        key, limits = reservation.key, reservation.key.limits
        check = {
            "TableName": self._table,
            "Key": serialize(keys_table.secret_key(key_hash)),
            "ConditionExpression": "attribute_exists(pk) AND disabled = :false "
            "AND (attribute_not_exists(valid_until) OR valid_until > :now)",
            "ExpressionAttributeValues": serialize({":false": False, ":now": utc_iso(now)}),
        }
        items: list[tuple[Cause, Any]] = [("key", {"ConditionCheck": check})]
        if reservation.holds_spend:
            spend = Update(
                add={"inflight": 1},
                set_if_absent=ttl_attribute(reservation.spend_expires_at),
                condition="attribute_not_exists(spent_usd) OR spent_usd < :limit",
                values={":limit": limits.spend_limit_usd},
            )
            items.append(("spend", {"Update": spend.request(self._table, self._spend_key(reservation))}))
        if reservation.holds_minute:
            conditions, values = [], {}
            if limits.requests_per_minute is not None:
                conditions.append("(attribute_not_exists(requests) OR requests < :rpm)")
                values[":rpm"] = limits.requests_per_minute
            if limits.tokens_per_minute is not None:
                conditions.append("(attribute_not_exists(tokens) OR tokens < :tpm)")
                values[":tpm"] = limits.tokens_per_minute
            minute = Update(
                add={"requests": 1},
                set_if_absent=ttl_attribute(reservation.minute_expires_at),
                condition=" AND ".join(conditions),
                values=values,
            )
            items.append(("minute", {"Update": minute.request(self._table, self._minute_key(reservation))}))
        balance = Update(
            add={"inflight": 1},
            condition="attribute_not_exists(credits_usd) OR (attribute_not_exists(spent_usd) AND "
            "credits_usd > :zero) OR spent_usd < credits_usd",
            values={":zero": Decimal(0)},
        )
        items.append(("balance", {"Update": balance.request(self._table, keys_table.balance_key(key.account_id))}))
        return items

    def counters(self, reservation: Reservation) -> dict[str, dict[str, Any]]:
        wanted = {"balance": keys_table.balance_key(reservation.key.account_id)}
        if reservation.spend_period is not None:
            wanted["spend"] = self._spend_key(reservation)
        if reservation.minute is not None:
            wanted["minute"] = self._minute_key(reservation)
        keys = [serialize(key) for key in wanted.values()]
        with storage_errors(UNAVAILABLE):
            response = self.client.batch_get_item(RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}})
        found = {
            (item["pk"], item["sk"]): item for item in map(deserialize, response["Responses"].get(self._table, []))
        }
        return {name: found.get((key["pk"], key["sk"]), {}) for name, key in wanted.items()}

    @staticmethod
    def _spend_key(reservation: Reservation) -> dict[str, str]:
        return keys_table.spend_key(reservation.key.key_id, reservation.spend_period or "")

    @staticmethod
    def _minute_key(reservation: Reservation) -> dict[str, str]:
        return keys_table.minute_key(reservation.key.key_id, reservation.minute or "")
