"""Minting key secrets and hashing them. Secrets are never stored, only their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections import Counter
from collections.abc import Iterable

from meterway.accounts.models import KEY_SHARDS, ApiKey, KeyKind, KeyLimits, key_shard

# Fixed, recognisable prefixes so secret scanners can flag a leaked key.
SECRET_PREFIX: dict[KeyKind, str] = {"api": "mw-live-", "admin": "mw-admin-"}
_DISPLAY_LENGTH = 14


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a key's secret: the only form in which a key is stored or looked up."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret(kind: KeyKind) -> str:
    return SECRET_PREFIX[kind] + secrets.token_urlsafe(32)


def new_key_id(shard: int | None = None) -> str:
    """A random key id; drawn again until it falls in ``shard``, if given (about ``KEY_SHARDS``
    draws of a few microseconds)."""
    while True:
        key_id = "key_" + uuid.uuid4().hex[:20]
        if shard is None or key_shard(key_id) == shard:
            return key_id


def least_used_shard(keys: Iterable[ApiKey]) -> int:
    """The shard that the fewest of ``keys`` (an account's API keys) fall in, the lowest of ties."""
    used = Counter(key_shard(key_id) for key_id in {key.key_id for key in keys})
    return min(range(KEY_SHARDS), key=lambda shard: (used[shard], shard))


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
    shard: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret; the caller shows the secret once and stores only the key. The
    key's id falls in ``shard`` (``key_shard``) when one is asked for."""
    secret = new_secret(kind)
    key = ApiKey(
        key_id=new_key_id(shard),
        account_id=account_id,
        name=name,
        kind=kind,
        member=member,
        display_prefix=display_prefix(secret),
        limits=limits or KeyLimits(),
        valid_until=valid_until,
    )
    return key, secret
