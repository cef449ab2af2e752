"""API and admin keys: minting secrets and hashing them. Secrets are never stored, only hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

KeyKind = Literal["api", "admin"]
SpendPeriod = Literal["daily", "weekly", "monthly", "none"]

# Fixed, recognisable prefixes so secret scanners can flag a leaked key.
SECRET_PREFIX: dict[KeyKind, str] = {"api": "mw-live-", "admin": "mw-admin-"}
_DISPLAY_LENGTH = 14


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
    created_at: str = field(default_factory=lambda: utc_iso(datetime.now(UTC)))
    display_prefix: str = ""
    limits: KeyLimits = field(default_factory=KeyLimits)
    valid_until: str | None = None

    @property
    def usable(self) -> bool:
        return not self.disabled and not self.expired_at(datetime.now(UTC))

    def expired_at(self, moment: datetime) -> bool:
        return self.valid_until is not None and utc_iso(moment) >= self.valid_until


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a key's secret: the only form in which a key is stored or looked up."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret(kind: KeyKind) -> str:
    return SECRET_PREFIX[kind] + secrets.token_urlsafe(32)


def display_prefix(secret: str) -> str:
    return secret[:_DISPLAY_LENGTH]


def mint_key(
    account_id: str,
    name: str,
    *,
    kind: KeyKind = "api",
    member: str | None = None,
    limits: KeyLimits | None = None,
    valid_until: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret; the caller shows the secret once and stores only the key."""
    secret = new_secret(kind)
    key = ApiKey(
        key_id="key_" + uuid.uuid4().hex[:20],
        account_id=account_id,
        name=name,
        kind=kind,
        member=member,
        display_prefix=display_prefix(secret),
        limits=limits or KeyLimits(),
        valid_until=valid_until,
    )
    return key, secret


def utc_iso(moment: datetime) -> str:
    """UTC timestamp with milliseconds and a ``Z``: sorts as text in the same order as in time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
