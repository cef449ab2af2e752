"""JSON a client sends, read within limits: nesting deeper than ``MAX_JSON_DEPTH`` is refused
before the parser sees it (Python's parser recurses, and a few thousand ``[`` exhaust its stack)."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_JSON_DEPTH = 64
# A string literal whole (its brackets are text), or one bracket.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class TooDeep(ValueError):
    """JSON nested deeper than the limit."""


def depth_within(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``text``'s arrays and objects nest at most ``limit`` deep (stops at the first level over)."""
    depth = 0
    for token in _TOKENS.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return False
        elif bracket in "]}":
            depth -= 1
    return True


def loads(text: str, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for text a client sent: ``TooDeep`` past ``limit`` levels, ``ValueError`` if not JSON."""
    if not depth_within(text, limit):
        raise TooDeep(f"JSON nested more than {limit} levels deep")
    return json.loads(text)
