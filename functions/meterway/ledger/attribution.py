"""Who a request was for and which application sent it, as the client names them.

``user`` is the end user the client names: OpenAI's ``user`` (or the Responses API's
``safety_identifier``), Anthropic's ``metadata.user_id``. Claude Code puts a JSON text there,
``{"device_id", "account_uuid", "session_id"}`` (``user_<device>_account_<uuid>_session_<uuid>``
in its older versions): a new value every session, so the record keeps whom the session is for,
its account or else its device. ``app`` is the application's name, OpenRouter's ``X-Title``
header or ``X-Meterway-App``. Both are cut to 256 characters.

The rollups count both as dimensions (``rollup_value``): a record that names none is counted as
``(none)``, and a value is cut to what a DynamoDB sort key holds beside its bucket. A user is
counted as whom it names (``user_value``), so the records of versions that kept Claude Code's
session JSON count under its account or device too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

NAME_LIMIT = 256
# The bytes of a value in a rollup cell's sort key (``<bucket>#<value>``, at most 1,024 bytes).
ROLLUP_VALUE_BYTES = 256
NONE = "(none)"
_OLD_CLAUDE_CODE = re.compile(r"^user_([0-9a-f]{64})_account_([0-9a-f-]*)_session_[0-9a-f-]+$")


def end_user(body: Mapping[str, Any]) -> str | None:
    """The end user a request's body names: ``user``, ``safety_identifier`` or ``metadata.user_id``."""
    metadata = body.get("metadata")
    named = body.get("user") or body.get("safety_identifier")
    if not named and isinstance(metadata, dict):
        named = metadata.get("user_id")
    return _whom(str(named))[:NAME_LIMIT] if named else None


def _whom(user: str) -> str:
    """A Claude Code session's account (or device when it has none); any other value as it is."""
    if user.startswith("{"):
        try:
            session = json.loads(user)
        except ValueError:
            return user
        if isinstance(session, dict) and (session.get("account_uuid") or session.get("device_id")):
            return str(session.get("account_uuid") or session.get("device_id"))
        return user
    old = _OLD_CLAUDE_CODE.match(user)
    return (old.group(2) or old.group(1)) if old else user


def app_name(headers: Mapping[str, str]) -> str | None:
    """The application a request's headers name."""
    named = (headers.get("x-title") or headers.get("x-meterway-app") or "").strip()
    return named[:NAME_LIMIT] or None


def rollup_value(value: str | None) -> str:
    """A user or app as the rollups count it: ``(none)`` when absent, cut to ``ROLLUP_VALUE_BYTES``."""
    if not value:
        return NONE
    cut = value.encode()[:ROLLUP_VALUE_BYTES].decode(errors="ignore")
    return cut or NONE


def user_value(user: str | None) -> str:
    """A user as the rollups count it: whom it names (a Claude Code session's account or device)."""
    return rollup_value(_whom(user) if user else user)


def cell_value(kind: str, value: str | None) -> str:
    """A user's (``kind`` "user") or an app's rollup value."""
    return user_value(value) if kind == "user" else rollup_value(value)
