"""What the keys' listing shows of their use, read from the rollups: the account's ``last-used``
partition, then the month rows of the keys' shards; and what a member spent in a window, which
their budget starts from."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal

from meterway.accounts.models import ApiKey
from meterway.analytics.dal.rollup_store import RollupStore
from meterway.analytics.logic.reports import window_cells
from meterway.analytics.logic.windows import Window
from meterway.analytics.models import LastUse
from meterway.core.clock import label, utc_iso
from meterway.core.errors import StorageError
from meterway.core.money import to_decimal
from meterway.core.observability import logger

# Spend to date sums month rollups from here on: before Meterway existed, nothing was spent.
FIRST_MONTH = "2020-01"


class RollupKeyUsage:
    """Each key's spend to date (its month rollups) and last use (raised by the aggregator for API
    keys, by the management API for admin keys)."""

    def __init__(self, rollups: RollupStore):
        self._rollups = rollups

    def spend_by_key(self, account_id: str, now: datetime, keys: Collection[str]) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        rows = self._rollups.query(account_id, "month", "key", FIRST_MONTH, label(now, "month"), keys=keys)
        for row in rows:
            totals[row["value"]] = totals.get(row["value"], Decimal(0)) + to_decimal(row.get("cost_usd"))
        return totals

    def last_used(self, account_id: str) -> dict[str, str]:
        return self._rollups.last_used(account_id) | self._rollups.admin_last_used(account_id)


class RollupMemberSpend:
    """A member's spend in a window: their rows of the member dimension, in the coarsest buckets."""

    def __init__(self, rollups: RollupStore):
        self._rollups = rollups

    def spent(self, account_id: str, member_id: str, start: datetime, end: datetime) -> Decimal:
        cells = window_cells(self._rollups, account_id, Window(start, end), "member", member_id)
        return sum((cell.counters.cost_usd for cell in cells), Decimal(0))


def note_admin_use(rollups: RollupStore, admin: ApiKey, now: datetime) -> None:
    """Raise the admin key's last use to ``now`` (the keys' listing shows it). A failure is logged
    and goes no further: the call the key made is what matters."""
    try:
        rollups.raise_last_use(LastUse(admin.account_id, admin.key_id, utc_iso(now), admin=True))
    except StorageError:
        logger.warning("an admin key's last use was not recorded", extra={"key_id": admin.key_id})
