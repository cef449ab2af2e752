"""msgspec's validation errors, read: its message and the place it names (``- at `$.a.b[0]```)."""

from __future__ import annotations

import re

import msgspec

_MISSING = re.compile(r"Object missing required field `(.+)`")


def problem(error: msgspec.ValidationError) -> tuple[str, str]:
    """The message and the place (``a.b[0]``; "" for the whole value). A missing field's place is
    the field itself."""
    message, _, at = str(error).partition(" - at `$")
    place = at.rstrip("`").lstrip(".")
    if missing := _MISSING.fullmatch(message):
        place = f"{place}.{missing.group(1)}" if place else missing.group(1)
    return message, place


def located(error: msgspec.ValidationError, under: str = "") -> str:
    """``<under>.<place>: <message>``, each part only where there is one."""
    message, place = problem(error)
    where = ".".join(part for part in (under, place) if part)
    return f"{where}: {message}" if where else message
