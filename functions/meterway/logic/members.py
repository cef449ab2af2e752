"""Members: the people an account's keys belong to. A key names its member by ``member_id``."""

from __future__ import annotations

from dataclasses import dataclass

from meterway.errors import InvalidRequest

MAX_MEMBER_ID = 100
# The rollups count keys without a member under this value: no member may be called that.
RESERVED_MEMBER_IDS = frozenset({"(none)"})


@dataclass(frozen=True, slots=True)
class Member:
    """One member of an account. Disabling a member disables their keys (see ``manage_members``)."""

    account_id: str
    member_id: str
    name: str | None
    created_at: str
    disabled: bool = False


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
