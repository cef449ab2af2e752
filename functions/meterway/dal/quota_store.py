"""Reservations and counters in the KeysTable (``QUOTA#<key_id>`` and ``ACCOUNT#<id>/BALANCE``).

One TransactWriteItems per request reserves: a condition check on the key's hash item (so a
disabled, deleted or expired key is refused on its next request, whatever a warm cache holds),
then conditional adds on the counters. Which condition failed decides the answer: 401, 402 or 429.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from meterway.dal.aws import AwsResource, deserialize, serialize
from meterway.errors import AuthenticationFailed, QuotaExceeded, RateLimited, StorageError
from meterway.logic.keys import ApiKey, utc_iso
from meterway.logic.quotas import (
    MINUTE_COUNTER_TTL,
    PERIOD_COUNTER_GRACE,
    Reservation,
    balance_key,
    plan_reservation,
    quota_pk,
    seconds_to_next_minute,
)


class QuotaStore(Protocol):
    def reserve(self, key: ApiKey, key_hash: str, now: datetime) -> Reservation:
        """Reserve one request or raise the error the client should get."""

    def state(self, key: ApiKey, now: datetime) -> dict[str, dict[str, Any]]:
        """The key's current counters: ``spend``, ``minute`` and ``balance`` items (empty if none)."""


class DynamoQuotaStore(AwsResource):
    def __init__(self, table_name: str, client: Any | None = None):
        super().__init__(client)
        self._table = table_name

    def reserve(self, key: ApiKey, key_hash: str, now: datetime) -> Reservation:
        from botocore.exceptions import BotoCoreError, ClientError

        reservation = plan_reservation(key, now)
        items, causes = self._reserve_items(key, key_hash, reservation, now)
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            raise _refusal(exc, causes, key, reservation, now) from exc
        except BotoCoreError as exc:
            raise StorageError("The key store is unavailable; try again.") from exc
        return reservation

    def _reserve_items(
        self, key: ApiKey, key_hash: str, reservation: Reservation, now: datetime
    ) -> tuple[list[dict[str, Any]], list[str]]:
        items = [
            {
                "ConditionCheck": {
                    "TableName": self._table,
                    "Key": serialize({"pk": f"KEYHASH#{key_hash}", "sk": "KEY"}),
                    "ConditionExpression": "attribute_exists(pk) AND disabled = :false "
                    "AND (attribute_not_exists(valid_until) OR valid_until > :now)",
                    "ExpressionAttributeValues": serialize({":false": False, ":now": utc_iso(now)}),
                }
            }
        ]
        causes = ["key"]
        limits = key.limits
        if reservation.spend_sk:
            expires = reservation.next_reset + PERIOD_COUNTER_GRACE if reservation.next_reset else None
            items.append(
                self._add_one(
                    quota_pk(key.key_id),
                    reservation.spend_sk,
                    "inflight",
                    expires,
                    "attribute_not_exists(spent_usd) OR spent_usd < :limit",
                    {":limit": limits.spend_limit_usd},
                )
            )
            causes.append("spend")
        if reservation.minute_sk:
            conditions, values = [], {}
            if limits.requests_per_minute is not None:
                conditions.append("(attribute_not_exists(requests) OR requests < :rpm)")
                values[":rpm"] = limits.requests_per_minute
            if limits.tokens_per_minute is not None:
                conditions.append("(attribute_not_exists(tokens) OR tokens < :tpm)")
                values[":tpm"] = limits.tokens_per_minute
            items.append(
                self._add_one(
                    quota_pk(key.key_id),
                    reservation.minute_sk,
                    "requests",
                    now + MINUTE_COUNTER_TTL,
                    " AND ".join(conditions),
                    values,
                )
            )
            causes.append("minute")
        balance = balance_key(key.account_id)
        items.append(
            self._add_one(
                balance["pk"],
                balance["sk"],
                "inflight",
                None,
                "attribute_not_exists(credits_usd) OR (attribute_not_exists(spent_usd) AND "
                "credits_usd > :zero) OR spent_usd < credits_usd",
                {":zero": Decimal(0)},
            )
        )
        causes.append("balance")
        return items, causes

    def _add_one(
        self, pk: str, sk: str, counter: str, expires: datetime | None, condition: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        expression = f"ADD {counter} :one"
        values = {**values, ":one": 1}
        if expires is not None:
            expression += " SET expires_at = if_not_exists(expires_at, :expires)"
            values[":expires"] = int(expires.timestamp())
        return {
            "Update": {
                "TableName": self._table,
                "Key": serialize({"pk": pk, "sk": sk}),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeValues": serialize(values),
            }
        }

    def state(self, key: ApiKey, now: datetime) -> dict[str, dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        reservation = plan_reservation(key, now)
        wanted = {"balance": balance_key(key.account_id)}
        if reservation.spend_sk:
            wanted["spend"] = {"pk": quota_pk(key.key_id), "sk": reservation.spend_sk}
        if reservation.minute_sk:
            wanted["minute"] = {"pk": quota_pk(key.key_id), "sk": reservation.minute_sk}
        try:
            response = self.client.batch_get_item(
                RequestItems={self._table: {"Keys": [serialize(k) for k in wanted.values()], "ConsistentRead": True}}
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The key store is unavailable; try again.") from exc
        found = {
            (item["pk"], item["sk"]): item for item in map(deserialize, response["Responses"].get(self._table, []))
        }
        return {name: found.get((k["pk"], k["sk"]), {}) for name, k in wanted.items()}


def _refusal(exc: Any, causes: list[str], key: ApiKey, reservation: Reservation, now: datetime) -> Exception:
    error = exc.response.get("Error", {})
    if error.get("Code") != "TransactionCanceledException":
        return StorageError("The key store did not accept the reservation.")
    reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons") or []]
    if not reasons:
        listed = error.get("Message", "").rpartition("[")[2].rstrip("]")
        reasons = [reason.strip() for reason in listed.split(",")]
    failed = [cause for cause, code in zip(causes, reasons, strict=False) if code == "ConditionalCheckFailed"]
    if not failed:
        # Throttled or conflicting with a concurrent transaction: the client may simply retry.
        return RateLimited("Too many concurrent requests for this key; retry shortly.", headers={"retry-after": "1"})
    return _error_for(failed[0], key, reservation, now)


def _error_for(cause: str, key: ApiKey, reservation: Reservation, now: datetime) -> Exception:
    if cause == "key":
        return AuthenticationFailed("Invalid, disabled or expired API key.")
    if cause == "spend":
        resets = f" It resets at {utc_iso(reservation.next_reset)}." if reservation.next_reset else ""
        return QuotaExceeded(
            f"This key reached its spend limit of ${key.limits.spend_limit_usd}.{resets}",
            code="key_spend_limit_reached",
        )
    if cause == "minute":
        wait = str(seconds_to_next_minute(now))
        return RateLimited("This key is over its per-minute limit.", headers={"retry-after": wait})
    return QuotaExceeded("The account's credit balance is used up: add credit to continue.", code="insufficient_credit")
