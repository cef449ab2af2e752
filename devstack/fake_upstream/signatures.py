"""Opaque tokens the model hands out and later checks: thinking signatures, encrypted reasoning.

The real providers let clients pass hidden reasoning back (Anthropic ``thinking`` blocks with
their ``signature``, OpenAI ``reasoning`` items with ``encrypted_content``) and refuse it when it
was altered. A gateway that re-serialises, trims or re-orders these blocks breaks multi-turn tool
use in production, so the fake verifies them too. The token carries the text it vouches for, so
no state is needed, and it is deterministic: the same text always gets the same token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

_KEY = b"meterway-fake-upstream"
_MAC_BYTES = 32


def seal(kind: str, text: str) -> str:
    """An opaque token for ``text`` (``kind`` keeps thinking and reasoning tokens apart)."""
    payload = text.encode()
    mac = hmac.new(_KEY, kind.encode() + b"\0" + payload, hashlib.sha256).digest()
    return base64.b64encode(mac + payload).decode()


def unseal(kind: str, token: object) -> str | None:
    """The text ``token`` was made for, or None when it is not a token ``seal(kind, ...)`` made."""
    if not isinstance(token, str):
        return None
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return None
    mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
    expected = hmac.new(_KEY, kind.encode() + b"\0" + payload, hashlib.sha256).digest()
    if len(raw) < _MAC_BYTES or not hmac.compare_digest(mac, expected):
        return None
    try:
        return payload.decode()
    except UnicodeDecodeError:
        return None
