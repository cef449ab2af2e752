"""A key's counters and its account's credit in the KeysTable (see ``keys_table``).

A request is checked by one round of single-item requests sent at once on the event loop
(``meterway.core.dynamo_http``), never a transaction:
- a consistent GetItem of one read copy of the key's secret item, picked at random (so a
  disabled, deleted or expired key is refused on its next request, whatever a warm cache holds:
  the copies are written in the same transactions as the item). A secret stored before copies
  existed is read from its item;
- for a key with a spend limit, a GetItem of one copy of its spend counter;
- for an account with credit, a GetItem of one copy of its ``BALANCE`` item; whether an account
  has credit at all is remembered for ``credit_ttl_s`` (credit, once on, stays on);
- for a key with a per-minute limit, a conditional add of one request to one shard of its
  minute counter (``keys_table.minute_shards``).

Spend and tokens are added to the counters by the AggregatorFunction when it counts the ledger
records (``meterway.ledger``), so a check reads what was counted so far. When a condition fails
the store says which one (``ReservationRefused.cause``) and takes back the request it added to a
minute shard; what the client is told is the logic's call.

The counters' copies are set from their item by the aggregator after each batch it counts, never
to an older version, and read eventually consistent: a copy is the item as it was a moment ago.
Spend only grows, so a copy at the limit refuses rightly. Credit grows too, with each top-up, so a
balance copy that refuses is checked against the item first. Where no copy is written yet, the
item is read instead.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from meterway.accounts.dal import keys_table
from meterway.accounts.models import Reservation, ttl_attribute
from meterway.core.aws import AwsResource, deserialize, serialize
from meterway.core.clock import utc_iso
from meterway.core.dynamo import ConditionFailed, Update, storage_errors
from meterway.core.money import to_decimal

if TYPE_CHECKING:
    from meterway.core.dynamo_http import DynamoHttp

UNAVAILABLE = "The key store is unavailable; try again."
# DynamoDB's TTL removes counters once nothing reads them any more.
MINUTE_COUNTER_TTL = timedelta(days=1)
PERIOD_COUNTER_GRACE = timedelta(days=7)

Cause = Literal["key", "spend", "member", "minute", "balance"]
# The order in which a refusal names its cause when several conditions fail.
CAUSES: tuple[Cause, ...] = ("key", "spend", "member", "minute", "balance")


class ReservationRefused(Exception):
    """A condition of the reservation failed; ``cause`` is the first that did, in this order: the
    key itself, its spend limit, its member's budget, its per-minute limits, the account's credit."""

    def __init__(self, cause: Cause):
        super().__init__(cause)
        self.cause: Cause = cause


@dataclass(frozen=True, slots=True)
class Standing:
    """What a check read: the key's counted spend and the account's credit left (None where it
    did not read them), for the caller to judge how far the key is from its limits."""

    spent_usd: Decimal | None = None
    credits_usd: Decimal | None = None
    credit_left_usd: Decimal | None = None
    member_spent_usd: Decimal | None = None


class QuotaStore(Protocol):
    async def reserve(self, reservation: Reservation, key_hash: str, now: datetime) -> Standing:
        """Check the key and every limit ``reservation`` names, and hold one request on its minute
        shard where it has a per-minute limit. Raises ``ReservationRefused`` when a limit or the
        key refuses it (nothing stays held then)."""

    def counters(self, reservation: Reservation) -> dict[str, dict[str, Any]]:
        """The counters ``reservation`` names as they stand: ``spend``, ``minute`` (its shards
        summed) and ``balance`` items (empty where there is none yet)."""


class DynamoQuotaStore(AwsResource):
    def __init__(
        self,
        table_name: str,
        client: Any | None = None,
        *,
        credit_ttl_s: float = 30.0,
        dynamo: DynamoHttp | None = None,
    ):
        super().__init__(client, dynamo=dynamo)
        self._table = table_name
        self._credit_ttl_s = credit_ttl_s
        # account id -> (has credit, when that was read, time.monotonic())
        self._credit: dict[str, tuple[bool, float]] = {}
        # (key id, minute, shard) of minute shards found full: refused here without a write.
        self._full: set[tuple[str, str, int]] = set()

    async def reserve(self, reservation: Reservation, key_hash: str, now: datetime) -> Standing:
        key = reservation.key
        shard = (key.key_id, reservation.minute or "", reservation.minute_shard)
        if reservation.holds_minute and shard in self._full:
            raise ReservationRefused("minute")
        outcomes, error = await _run(self._checks(reservation, key_hash, now))
        if error is None and "balance" in outcomes:
            error = await self._balance_of(outcomes, reservation)
        if error is not None:
            if outcomes.get("minute") is True:
                await self._release_minute(reservation)
            raise error
        for counter in ("spend", "member"):
            if counter in outcomes:
                # A spend counter not written yet has spent nothing.
                outcomes[counter] = outcomes[counter][0] or {}
        spend, member, balance = outcomes.get("spend"), outcomes.get("member"), outcomes.get("balance")
        if "balance" in outcomes:
            self._credit[key.account_id] = (_credit_left(balance) is not None, time.monotonic())
        refused = [cause for cause in CAUSES if cause in outcomes and not _passes(cause, outcomes[cause], reservation)]
        if refused:
            await self._refuse(reservation, outcomes.get("minute"), shard)
            raise ReservationRefused(refused[0])
        return Standing(
            spent_usd=to_decimal(spend.get("spent_usd")) if spend is not None else None,
            credits_usd=to_decimal(balance["credits_usd"]) if balance and "credits_usd" in balance else None,
            credit_left_usd=_credit_left(balance),
            member_spent_usd=to_decimal(member.get("spent_usd")) if member is not None else None,
        )

    def _checks(self, reservation: Reservation, key_hash: str, now: datetime) -> dict[Cause, Awaitable[Any]]:
        """The reads (and the minute's hold) a reservation needs, not started yet."""
        key = reservation.key
        checks: dict[Cause, Awaitable[Any]] = {"key": self._key_valid(key_hash, key.secret_copies, now)}
        if reservation.checks_spend:
            checks["spend"] = self._read_counter(keys_table.spend_key(key.key_id, reservation.spend_period or ""))
        if reservation.checks_member:
            checks["member"] = self._read_counter(member_counter(reservation))
        if self._may_have_credit(key.account_id):
            checks["balance"] = self._read_counter(keys_table.balance_key(key.account_id))
        if reservation.holds_minute:
            checks["minute"] = self._hold_minute(reservation)
        return checks

    async def _refuse(self, reservation: Reservation, held: bool | None, shard: tuple[str, str, int]) -> None:
        """Take back the request held on the minute shard, or remember a shard found full."""
        if held is True:
            await self._release_minute(reservation)
        elif held is False:
            # Only the current minute's full shards are worth remembering.
            self._full = {full for full in self._full if full[1] == shard[1]} | {shard}

    async def _key_valid(self, key_hash: str, copies: int, now: datetime) -> bool:
        """Whether the secret is enabled and unexpired, by one of its copies (or its item)."""
        where = keys_table.secret_copy_key(key_hash, _any(copies)) if copies else keys_table.secret_key(key_hash)
        item = await self._read(where, "disabled, valid_until")
        if item is None:
            return False
        valid_until = item.get("valid_until")
        return item.get("disabled") is False and (valid_until is None or str(valid_until) > utc_iso(now))

    async def _read_counter(self, key: dict[str, str]) -> tuple[dict[str, Any] | None, bool]:
        """A spend counter or balance by one of its copies, else by its item; and whether a copy
        answered."""
        copy = await self._read(keys_table.counter_copy_key(key, _any(keys_table.COUNTER_COPIES)), consistent=False)
        if copy is not None:
            return copy, True
        return await self._read(key), False

    async def _balance_of(self, outcomes: dict[Cause, Any], reservation: Reservation) -> Exception | None:
        """Put the balance read in ``outcomes``: a copy's, unless it refuses, since it may predate a
        top-up; then the item's. The storage error of that read, if any."""
        balance, copied = outcomes["balance"]
        outcomes["balance"] = balance
        if copied and not _passes("balance", balance, reservation):
            try:
                outcomes["balance"] = await self._read(keys_table.balance_key(reservation.key.account_id))
            except Exception as exc:  # noqa: BLE001 - raised by the caller after taking back the minute
                return exc
        return None

    async def _read(
        self, key: dict[str, str], projection: str | None = None, *, consistent: bool = True
    ) -> dict[str, Any] | None:
        request: dict[str, Any] = {"TableName": self._table, "Key": serialize(key), "ConsistentRead": consistent}
        if projection:
            request["ProjectionExpression"] = projection
        with storage_errors(UNAVAILABLE):
            item = (await self.dynamo.call("GetItem", request)).get("Item")
        return deserialize(item) if item else None

    async def _hold_minute(self, reservation: Reservation) -> bool:
        """One request added to the reservation's minute shard under its share of the key's
        per-minute limits; False when the shard is full."""
        limits, shards = reservation.key.limits, reservation.minute_shards
        conditions, values = [], {}
        if limits.requests_per_minute is not None:
            conditions.append("(attribute_not_exists(requests) OR requests < :rpm)")
            values[":rpm"] = keys_table.shard_share(limits.requests_per_minute, shards)
        if limits.tokens_per_minute is not None:
            conditions.append("(attribute_not_exists(tokens) OR tokens < :tpm)")
            values[":tpm"] = keys_table.shard_share(limits.tokens_per_minute, shards)
        minute = Update(
            add={"requests": 1},
            set_if_absent=ttl_attribute(reservation.minute_expires_at),
            condition=" AND ".join(conditions),
            values=values,
        )
        try:
            with storage_errors(UNAVAILABLE):
                await self.dynamo.call("UpdateItem", minute.request(self._table, _minute_key(reservation)))
        except ConditionFailed:
            return False
        return True

    async def _release_minute(self, reservation: Reservation) -> None:
        """Take back the request held on a minute shard by a reservation refused for another cause."""
        release = Update(add={"requests": -1}).request(self._table, _minute_key(reservation))
        with storage_errors(UNAVAILABLE):
            await self.dynamo.call("UpdateItem", release)

    def _may_have_credit(self, account_id: str) -> bool:
        known = self._credit.get(account_id)
        return known is None or known[0] or time.monotonic() - known[1] >= self._credit_ttl_s

    def counters(self, reservation: Reservation) -> dict[str, dict[str, Any]]:
        key = reservation.key
        wanted = {"balance": keys_table.balance_key(key.account_id)}
        if reservation.spend_period is not None:
            wanted["spend"] = keys_table.spend_key(key.key_id, reservation.spend_period)
        if reservation.checks_member:
            wanted["member"] = member_counter(reservation)
        minutes = (
            [keys_table.minute_key(key.key_id, reservation.minute, shard) for shard in range(reservation.minute_shards)]
            if reservation.minute is not None
            else []
        )
        keys = [serialize(item_key) for item_key in [*wanted.values(), *minutes]]
        with storage_errors(UNAVAILABLE):
            response = self.client.batch_get_item(RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}})
        found = {
            (item["pk"], item["sk"]): item for item in map(deserialize, response["Responses"].get(self._table, []))
        }
        state = {name: found.get((item_key["pk"], item_key["sk"]), {}) for name, item_key in wanted.items()}
        if minutes:
            shards = [found.get((item_key["pk"], item_key["sk"]), {}) for item_key in minutes]
            state["minute"] = {
                name: sum(int(shard.get(name, 0)) for shard in shards) for name in ("requests", "tokens")
            }
        return state


async def _run(checks: dict[Cause, Awaitable[Any]]) -> tuple[dict[Cause, Any], Exception | None]:
    """Every check at once: the outcomes of those that answered, and the first storage error (in
    the checks' order) of those that did not, once all have finished."""
    results = await asyncio.gather(*checks.values(), return_exceptions=True)
    outcomes: dict[Cause, Any] = {}
    error: Exception | None = None
    for name, result in zip(checks, results, strict=True):
        if isinstance(result, Exception):
            error = error or result
        elif isinstance(result, BaseException):
            raise result
        else:
            outcomes[name] = result
    return outcomes, error


def _passes(cause: Cause, outcome: Any, reservation: Reservation) -> bool:
    """Whether one check's outcome lets the request through."""
    if cause in ("key", "minute"):
        return bool(outcome)
    if cause == "spend":
        limit = reservation.key.limits.spend_limit_usd
        return outcome is None or limit is None or to_decimal(outcome.get("spent_usd")) < limit
    if cause == "member":
        budget = reservation.key.member_budget
        return outcome is None or budget is None or to_decimal(outcome.get("spent_usd")) < budget.spend_limit_usd
    left = _credit_left(outcome)
    return left is None or left > 0


def _credit_left(balance: dict[str, Any] | None) -> Decimal | None:
    """The account's credit less what was counted; None for an account without credit."""
    if balance is None or balance.get("credits_usd") is None:
        return None
    return to_decimal(balance["credits_usd"]) - to_decimal(balance.get("spent_usd"))


def _any(copies: int) -> int:
    """One of ``copies`` copies, at random so that each takes its share of the reads."""
    return random.randrange(copies)  # noqa: S311 - spreads reads; nothing secret depends on it


def member_counter(reservation: Reservation) -> dict[str, str]:
    """The counter of the key's member's spend under their budget in the reservation's period."""
    key, budget = reservation.key, reservation.key.member_budget
    if key.member is None or budget is None or reservation.member_period is None:
        raise ValueError("the reservation checks no member budget")
    return keys_table.member_spend_key(key.account_id, key.member, budget.since, reservation.member_period)


def _minute_key(reservation: Reservation) -> dict[str, str]:
    return keys_table.minute_key(reservation.key.key_id, reservation.minute or "", reservation.minute_shard)
