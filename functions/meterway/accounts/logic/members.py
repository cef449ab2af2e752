"""Member ids: the people an account's keys belong to, named by ``member_id`` (usually an email)."""

from __future__ import annotations

import re

from meterway.core.errors import InvalidRequest

MAX_MEMBER_ID = 100
# The rollups count keys without a member under this value: no member may be called that.
RESERVED_MEMBER_IDS = frozenset({"(none)"})
# What the OpenAPI document says a member id is: printable ASCII but space, '#' (it separates key
# parts), '/' and '%' (they would not survive as a path segment of /api/members/{id}), '(' and ')'
# (so that no id is the reserved one).
MEMBER_ID_PATTERN = r"^[!\"$&'*-.0-~]{1,100}$"
_MEMBER_ID = re.compile(MEMBER_ID_PATTERN)


def normalize_member_id(member_id: str) -> str:
    """Member ids are case-insensitive (usually an email): stored and compared lowercased."""
    normalized = member_id.strip().lower()
    if not 1 <= len(normalized) <= MAX_MEMBER_ID or normalized in RESERVED_MEMBER_IDS:
        raise InvalidRequest(f"A member id has 1 to {MAX_MEMBER_ID} characters and is not '(none)'.")
    if not _MEMBER_ID.fullmatch(normalized):
        raise InvalidRequest(
            "A member id is printable ASCII without spaces, '#', '/', '%', '(' or ')'.", code="invalid_member_id"
        )
    return normalized
