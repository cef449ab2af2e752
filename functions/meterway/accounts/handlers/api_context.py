"""What the account routes of the management API are handed with each request.

The management API (``meterway.management_api``) builds one object with these attributes and
puts it, with the calling admin key, in the resolver's context; the routes read them here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any, Protocol, cast

from meterway.accounts.dal.balance_store import BalanceStore
from meterway.accounts.dal.key_admin_store import KeyAdminStore
from meterway.accounts.dal.key_store import CachedKeyStore
from meterway.accounts.dal.member_store import MemberStore
from meterway.accounts.dal.spend_counters import SpendCounters
from meterway.accounts.logic.manage_keys import KeyUsage
from meterway.accounts.logic.manage_members import MemberSpend
from meterway.accounts.models import ApiKey


class AccountsContext(Protocol):
    """Read-only: the management API builds it once per process."""

    @property
    def keys(self) -> CachedKeyStore: ...

    @property
    def key_admin(self) -> KeyAdminStore: ...

    @property
    def members(self) -> MemberStore: ...

    @property
    def balance(self) -> BalanceStore: ...

    @property
    def key_usage(self) -> KeyUsage: ...

    @property
    def member_spend(self) -> MemberSpend: ...

    @property
    def spend_counters(self) -> SpendCounters: ...

    @property
    def models(self) -> Collection[str]: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...


def admin_of(router: Any) -> ApiKey:
    """The admin key calling the current request (checked before any route runs)."""
    return cast(ApiKey, router.context["admin"])


def context_of(router: Any) -> AccountsContext:
    return cast(AccountsContext, router.context["accounts"])
