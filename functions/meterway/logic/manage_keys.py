"""Creating and listing keys: shared by the management API, the CLI and the dev stack."""

from __future__ import annotations

from meterway.dal.key_store import KeyStore
from meterway.logic.keys import ApiKey, KeyKind, hash_secret, mint_key


def create_key(
    keys: KeyStore, account_id: str, name: str, *, kind: KeyKind = "api", member: str | None = None
) -> tuple[ApiKey, str]:
    """Mint a key, store its hash, and return it with its secret (shown once, stored never)."""
    key, secret = mint_key(account_id, name, kind=kind, member=member)
    keys.put(key, hash_secret(secret))
    return key, secret


def list_keys(keys: KeyStore, account_id: str) -> list[ApiKey]:
    return keys.list_keys(account_id)
