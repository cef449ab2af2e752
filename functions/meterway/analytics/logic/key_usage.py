"""What the keys' listing shows of their use, read from the rollups: the account's ``last-used``
partition, then the month rows of the keys' shards."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal

from meterway.analytics.dal.rollup_store import RollupStore
from meterway.core.clock import label
from meterway.core.money import to_decimal

# Spend to date sums month rollups from here on: before Meterway existed, nothing was spent.
FIRST_MONTH = "2020-01"


class RollupKeyUsage:
    """Each key's spend to date (its month rollups) and last use (raised by the aggregator)."""

    def __init__(self, rollups: RollupStore):
        self._rollups = rollups

    def spend_by_key(self, account_id: str, now: datetime, keys: Collection[str]) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        rows = self._rollups.query(account_id, "month", "key", FIRST_MONTH, label(now, "month"), keys=keys)
        for row in rows:
            totals[row["value"]] = totals.get(row["value"], Decimal(0)) + to_decimal(row.get("cost_usd"))
        return totals

    def last_used(self, account_id: str) -> dict[str, str]:
        return self._rollups.last_used(account_id)
