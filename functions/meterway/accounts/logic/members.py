"""Member ids: the people an account's keys belong to, named by ``member_id`` (usually an email)."""

from __future__ import annotations

from meterway.core.errors import InvalidRequest

MAX_MEMBER_ID = 100
# The rollups count keys without a member under this value: no member may be called that.
RESERVED_MEMBER_IDS = frozenset({"(none)"})


def normalize_member_id(member_id: str) -> str:
    """Member ids are case-insensitive (usually an email): stored and compared lowercased."""
    normalized = member_id.strip().lower()
    if not 1 <= len(normalized) <= MAX_MEMBER_ID or normalized in RESERVED_MEMBER_IDS:
        raise InvalidRequest(f"A member id has 1 to {MAX_MEMBER_ID} characters and is not '(none)'.")
    # '/' and '%' would not survive as a path segment of /api/members/{id}; '#' separates key parts.
    if any(char.isspace() or not char.isprintable() or char in "#/%" for char in normalized):
        raise InvalidRequest(
            "A member id has no spaces, control characters, '#', '/' or '%'.", code="invalid_member_id"
        )
    return normalized
