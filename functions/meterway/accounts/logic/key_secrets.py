"""Minting key secrets and hashing them. Secrets are never stored, only their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from meterway.accounts.models import ApiKey, KeyKind, KeyLimits

# Fixed, recognisable prefixes so secret scanners can flag a leaked key.
SECRET_PREFIX: dict[KeyKind, str] = {"api": "mw-live-", "admin": "mw-admin-"}
_DISPLAY_LENGTH = 14


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
