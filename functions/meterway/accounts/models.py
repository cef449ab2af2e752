"""What accounts are made of: keys and their limits, members, and what a request reserves.

Plain values shared by the logic and the data access of this feature (and read by others): no
rules here beyond a key's own validity, and no storage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from meterway.core.clock import utc_iso, utc_now

KeyKind = Literal["api", "admin"]
SpendPeriod = Literal["daily", "weekly", "monthly", "none"]


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """What a key may spend and how fast. ``None`` means no limit of that kind.

    ``spend_period`` says when ``spend_limit_usd`` starts again: at 00:00 UTC each day, on
    Mondays, on the 1st of each month, or never (``none``: a lifetime budget).
    """

    spend_limit_usd: Decimal | None = None
    spend_period: SpendPeriod = "none"
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    allowed_models: tuple[str, ...] | None = None

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {"spend_period": self.spend_period}
        if self.spend_limit_usd is not None:
            item["spend_limit_usd"] = self.spend_limit_usd
        if self.requests_per_minute is not None:
            item["requests_per_minute"] = self.requests_per_minute
        if self.tokens_per_minute is not None:
            item["tokens_per_minute"] = self.tokens_per_minute
        if self.allowed_models is not None:
            item["allowed_models"] = list(self.allowed_models)
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any] | None) -> KeyLimits:
        if not item:
            return cls()
        limit = item.get("spend_limit_usd")
        models = item.get("allowed_models")
        return cls(
            spend_limit_usd=Decimal(str(limit)) if limit is not None else None,
            spend_period=item.get("spend_period", "none"),
            requests_per_minute=item.get("requests_per_minute"),
            tokens_per_minute=item.get("tokens_per_minute"),
            allowed_models=tuple(models) if models is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Budget:
    """What all of a member's keys together may spend in a period (``KeyLimits.spend_period``'s
    periods), counted from ``since``: the moment it was set, so that setting it again starts a
    counter of its own (seeded with the period's spend so far, ``manage_members``)."""

    spend_limit_usd: Decimal
    spend_period: SpendPeriod
    since: str

    def to_item(self) -> dict[str, Any]:
        return {"spend_limit_usd": self.spend_limit_usd, "spend_period": self.spend_period, "since": self.since}

    @classmethod
    def from_item(cls, item: dict[str, Any] | None) -> Budget | None:
        if not item:
            return None
        return cls(Decimal(str(item["spend_limit_usd"])), item.get("spend_period", "none"), str(item["since"]))


# A key's shard: which of KEY_SHARDS partitions its own rows (its usage by key, in the rollups) go
# to, so that an account's busy keys do not share one partition. Stable across processes and
# versions (not Python's salted ``hash``); a new key's id is drawn so that it lands in the shard its
# account's keys use least (``key_secrets.mint_key``).
KEY_SHARDS = 128


def key_shard(key_id: str) -> int:
    return int.from_bytes(hashlib.sha256(key_id.encode()).digest()[:4], "big") % KEY_SHARDS


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: everything but its secret.

    ``valid_until`` (UTC ISO) ends a key: its expiry, or for a rotated-out secret the end of the
    overlap during which the old secret keeps working.
    """

    key_id: str
    account_id: str
    name: str
    kind: KeyKind = "api"
    member: str | None = None
    disabled: bool = False
    created_at: str = field(default_factory=lambda: utc_iso(utc_now()))
    display_prefix: str = ""
    limits: KeyLimits = field(default_factory=KeyLimits)
    valid_until: str | None = None
    # How many read copies this secret's item has (``keys_table.KEY_COPIES``, or 0 for a secret
    # stored before copies existed): the reserve reads one of them instead of the item.
    secret_copies: int = 0
    # The budget of the key's member, copied onto the key (``manage_members.set_budget``) so that
    # the reserve knows it without reading the member.
    member_budget: Budget | None = None

    @property
    def usable(self) -> bool:
        return not self.disabled and not self.expired_at(utc_now())

    def expired_at(self, moment: datetime) -> bool:
        return self.valid_until is not None and utc_iso(moment) >= self.valid_until


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as the table holds it: its current secret's hash (never shown to anyone) and the
    hashes of rotated-out secrets that may still be in their overlap."""

    key: ApiKey
    key_hash: str
    retired_hashes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RetiredSecret:
    """A rotated-out secret: it works until ``valid_until``. ``retired_until`` is the end of its
    overlap, which a later change of the key's expiry never extends."""

    key_hash: str
    display_prefix: str
    valid_until: str
    retired_until: str


@dataclass(frozen=True, slots=True)
class Member:
    """One member of an account. Disabling a member disables their keys (see ``manage_members``)."""

    account_id: str
    member_id: str
    name: str | None
    created_at: str
    disabled: bool = False
    budget: Budget | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    """The counters one request counts in: its key's spend period and minute (and which shard of
    the minute, of how many), and its account's credit; when the spend period turns over, and
    when DynamoDB's TTL may drop each counter (epoch seconds; None: never).

    Every key's counters are kept, so that it can read its own use (``GET /v1/key``). A request is
    checked against a counter before it runs only where its key has a limit of that kind, and
    *held* (one request added under the limit's condition) only on the minute of a key with a
    per-minute limit; everything else is counted when the aggregator counts its record."""

    key: ApiKey
    spend_period: str | None = None
    minute: str | None = None
    next_reset: datetime | None = None
    spend_expires_at: int | None = None
    minute_expires_at: int | None = None
    minute_shard: int = 0
    minute_shards: int = 1
    # The member's budget period (None: the key has no member with a budget), when the next starts
    # and when its counter may expire.
    member_period: str | None = None
    member_next_reset: datetime | None = None
    member_expires_at: int | None = None

    @property
    def checks_member(self) -> bool:
        """Whether the member's spend is checked against their budget."""
        return self.member_period is not None

    @property
    def checks_spend(self) -> bool:
        """Whether the key's spend is checked against a limit."""
        return self.spend_period is not None and self.key.limits.spend_limit_usd is not None

    @property
    def holds_minute(self) -> bool:
        """Whether the request is held on its minute, under a per-minute limit."""
        limits = self.key.limits
        return self.minute is not None and (
            limits.requests_per_minute is not None or limits.tokens_per_minute is not None
        )


def ttl_attribute(expires_at: int | None) -> dict[str, int]:
    """A counter item's ``expires_at`` (DynamoDB's TTL attribute), where it has one."""
    return {"expires_at": expires_at} if expires_at is not None else {}


@dataclass(frozen=True, slots=True)
class CounterDelta:
    """Numbers to add to one item of the keys table when a request settles; ``expires_at`` (epoch
    seconds) is the item's TTL, set only if the item has none yet."""

    pk: str
    sk: str
    deltas: dict[str, int | Decimal]
    expires_at: int | None = None
    # Whether the reserve reads this counter through its copies, which the aggregator then sets.
    copied: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "pk": self.pk,
            "sk": self.sk,
            "deltas": {name: str(value) for name, value in self.deltas.items()},
        }
        return data | self._options()

    def to_item(self) -> dict[str, Any]:
        """As a DynamoDB map (numbers as numbers), the form a ledger record carries it in."""
        return {"pk": self.pk, "sk": self.sk, "deltas": dict(self.deltas)} | self._options()

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {} if self.expires_at is None else {"expires_at": self.expires_at}
        return options | ({"copied": True} if self.copied else {})

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> CounterDelta:
        """From a ledger record's map, as DynamoDB gives it back (numbers as Decimals)."""
        expires = item.get("expires_at")
        return cls(
            str(item["pk"]),
            str(item["sk"]),
            dict(item["deltas"]),
            int(expires) if expires is not None else None,
            bool(item.get("copied", False)),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CounterDelta:
        deltas: dict[str, int | Decimal] = {
            name: Decimal(value) if "." in value or "E" in value else int(value)
            for name, value in data["deltas"].items()
        }
        return cls(data["pk"], data["sk"], deltas, data.get("expires_at"), bool(data.get("copied", False)))
