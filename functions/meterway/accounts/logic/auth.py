"""Who is calling: a key from ``Authorization: Bearer`` or ``x-api-key``, looked up by its hash.

Fails closed: no header, an unknown hash, a disabled key or a store error all refuse the call, and
so does a request that presents more than one credential: two ``Authorization`` or two
``x-api-key`` headers, or the two headers with different secrets. Readers of repeated headers
differ (one takes the first, another the last), so a request must mean one key to all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meterway.accounts.dal.key_store import KeyStore
from meterway.accounts.logic.key_secrets import hash_secret
from meterway.accounts.models import ApiKey, KeyKind
from meterway.core.errors import AuthenticationFailed, PermissionDenied


def header_values(headers: Mapping[str, Any], name: str) -> list[str]:
    """Every value a request sent for header ``name`` (lower case), whatever the shape of its
    headers: Starlette's (``getlist``), or an API Gateway REST event's ``multiValueHeaders``
    (name → list, names in any case) or, without those, its ``headers`` (name → one value)."""
    getlist = getattr(headers, "getlist", None)
    if callable(getlist):
        return [str(value) for value in getlist(name)]
    found: list[str] = []
    for key, value in headers.items():
        if key.lower() == name:
            found.extend([value] if isinstance(value, str) else value)
    return found


def presented_secret(headers: Mapping[str, Any]) -> str | None:
    """The one secret the request presents; None without any; a 401 when it presents more than one."""
    authorization, api_key = header_values(headers, "authorization"), header_values(headers, "x-api-key")
    if len(authorization) > 1 or len(api_key) > 1:
        raise AuthenticationFailed(
            "Send one API key: the request repeats the Authorization or x-api-key header.", code="ambiguous_api_key"
        )
    scheme, _, token = (authorization or [""])[0].partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else ""
    key = (api_key or [""])[0].strip()
    if bearer and key and bearer != key:
        raise AuthenticationFailed(
            "Send one API key: Authorization and x-api-key carry different keys.", code="ambiguous_api_key"
        )
    return bearer or key or None


def presented_hash(headers: Mapping[str, Any]) -> str:
    """SHA-256 of the presented secret; no secret at all is a 401."""
    secret = presented_secret(headers)
    if secret is None:
        raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key'.")
    return hash_secret(secret)


def authenticate(headers: Mapping[str, Any], keys: KeyStore, *, kind: KeyKind) -> ApiKey:
    """The calling key, which must be usable and of ``kind``; raises 401/403 otherwise. ``headers``
    in any shape ``header_values`` reads."""
    return check_key(keys.get_by_hash(presented_hash(headers)), kind=kind)


def check_key(key: ApiKey | None, *, kind: KeyKind) -> ApiKey:
    if key is None or not key.usable:
        # Named as the caller knows it: the console and the management API ask for an admin key.
        raise AuthenticationFailed(
            "Invalid or disabled admin key." if kind == "admin" else "Invalid or disabled API key."
        )
    if key.kind != kind:
        needed = "an admin key" if kind == "admin" else "an API key (admin keys only manage)"
        raise PermissionDenied(f"This endpoint needs {needed}.")
    return key
