"""API and admin keys: minting secrets and hashing them. Secrets are never stored, only hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

KeyKind = Literal["api", "admin"]

# Fixed, recognisable prefixes so secret scanners can flag a leaked key.
SECRET_PREFIX: dict[KeyKind, str] = {"api": "mw-live-", "admin": "mw-admin-"}
_DISPLAY_LENGTH = 14


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: everything but its secret."""

    key_id: str
    account_id: str
    name: str
    kind: KeyKind = "api"
    member: str | None = None
    disabled: bool = False
    created_at: str = field(default_factory=lambda: utc_iso(datetime.now(UTC)))
    display_prefix: str = ""

    @property
    def usable(self) -> bool:
        return not self.disabled


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a key's secret: the only form in which a key is stored or looked up."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def mint_key(account_id: str, name: str, *, kind: KeyKind = "api", member: str | None = None) -> tuple[ApiKey, str]:
    """A new key and its secret; the caller shows the secret once and stores only the key."""
    secret = SECRET_PREFIX[kind] + secrets.token_urlsafe(32)
    key = ApiKey(
        key_id="key_" + uuid.uuid4().hex[:20],
        account_id=account_id,
        name=name,
        kind=kind,
        member=member,
        display_prefix=secret[:_DISPLAY_LENGTH],
    )
    return key, secret


def utc_iso(moment: datetime) -> str:
    """UTC timestamp with milliseconds and a ``Z``: sorts as text in the same order as in time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
