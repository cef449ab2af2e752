"""Who is calling: a key from ``Authorization: Bearer`` or ``x-api-key``, looked up by its hash.

Fails closed: no header, an unknown hash, a disabled key or a store error all refuse the call.
"""

from __future__ import annotations

from collections.abc import Mapping

from meterway.accounts.dal.key_store import KeyStore
from meterway.accounts.logic.key_secrets import hash_secret
from meterway.accounts.models import ApiKey, KeyKind
from meterway.core.errors import AuthenticationFailed, PermissionDenied


def presented_secret(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = headers.get("x-api-key", "").strip()
    return api_key or None


def presented_hash(headers: Mapping[str, str]) -> str:
    """SHA-256 of the presented secret; no secret at all is a 401."""
    secret = presented_secret(headers)
    if secret is None:
        raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key'.")
    return hash_secret(secret)


def authenticate(headers: Mapping[str, str], keys: KeyStore, *, kind: KeyKind) -> ApiKey:
    """The calling key, which must be usable and of ``kind``; raises 401/403 otherwise."""
    return check_key(keys.get_by_hash(presented_hash(headers)), kind=kind)


def check_key(key: ApiKey | None, *, kind: KeyKind) -> ApiKey:
    if key is None or not key.usable:
        raise AuthenticationFailed("Invalid or disabled API key.")
    if key.kind != kind:
        needed = "an admin key" if kind == "admin" else "an API key (admin keys only manage)"
        raise PermissionDenied(f"This endpoint needs {needed}.")
    return key
