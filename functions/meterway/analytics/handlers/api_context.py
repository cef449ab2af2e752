"""What the usage routes of the management API are handed with each request (see
``meterway.management_api``)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any, Protocol, cast

from meterway.accounts.dal.balance_store import BalanceStore
from meterway.accounts.dal.key_admin_store import KeyAdminStore
from meterway.accounts.dal.key_store import CachedKeyStore
from meterway.analytics.dal.rollup_store import RollupStore
from meterway.ledger.dal.ledger_store import LedgerStore


class AnalyticsContext(Protocol):
    """Read-only: the management API builds it once per process."""

    @property
    def keys(self) -> CachedKeyStore: ...

    @property
    def key_admin(self) -> KeyAdminStore: ...

    @property
    def balance(self) -> BalanceStore: ...

    @property
    def ledger(self) -> LedgerStore: ...

    @property
    def rollups(self) -> RollupStore: ...

    @property
    def models(self) -> Collection[str]:
        """The catalog's model ids."""

    @property
    def clock(self) -> Callable[[], datetime]: ...


def context_of(router: Any) -> AnalyticsContext:
    return cast(AnalyticsContext, router.context["analytics"])
