"""Failed requests that versions before the errors apart counted as requests, moved into errors.

Those versions added every record of a client request to its cells' ``requests``, served or not.
This one counts a failed request (nothing served, nothing billed) in ``errors`` instead, from the
date its account's marker holds (``rollups.start_changes``: the first batch of this version, plus
the margin an older aggregator may still be running); a failed request from before that date is
still counted as a request, by whichever version counts it, so that each record is counted one
way. ``recount_errors`` then moves each such record: ``requests`` −1 and ``errors`` +1 in each of
its cells, with a marker of its own written in the same transaction, so a record is moved once
however often it runs. The moves are additions, so they are exact while the aggregator runs.

The ledger is the source: a record it no longer holds (``MW_LEDGER_RETENTION_DAYS``) stays
counted as a request. Minute and 10-minute cells past their 8 days are gone and are not written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from meterway.analytics.dal.rollup_store import RollupStore
from meterway.analytics.logic.rollups import (
    ALL_TIME,
    counted,
    failed,
    rollup_updates,
    start_changes,
    write_parts,
)
from meterway.analytics.models import Part, RollupUpdate
from meterway.core.clock import EARLIEST, utc_iso
from meterway.core.errors import StorageError
from meterway.ledger.dal.ledger_store import LedgerQuery, LedgerStore

# The records read from the ledger at a time.
PAGE = 1000
# What moving a failed request does to each of its cells.
MOVE: dict[str, Any] = {"requests": -1, "errors": 1}


@dataclass
class Recount:
    """What a recount did: records moved now, moved by a run before, and from when this version
    counts the account's failed requests as errors."""

    account_id: str
    errors_from: datetime | None
    moved: int = 0
    moved_before: int = 0
    waiting_until: datetime | None = None


def recount_errors(store: RollupStore, ledger: LedgerStore, account_id: str, now: datetime) -> Recount:
    """Move every failed request of the account from before its errors-apart date into errors.
    Does nothing while records from before that date may still come (``waiting_until``)."""
    since = start_changes(store, [account_id], now).since(account_id, "errors-apart")
    report = Recount(account_id, since)
    if since == ALL_TIME:
        return report  # every record of the account was counted by this version
    if since > now:
        report.waiting_until = since
        return report
    query = LedgerQuery(account_id, utc_iso(EARLIEST), utc_iso(since), status="error")
    start_key: dict[str, Any] | None = None
    while True:
        items, start_key = ledger.page(query, PAGE, start_key)
        _move(store, [item for item in items if counted(item) and failed(item)], now, report)
        if start_key is None:
            return report


def _move(store: RollupStore, items: list[dict[str, Any]], now: datetime, report: Recount) -> None:
    parts = [Part(item["request_id"], "recount", item["account_id"], moves(item, now)) for item in items]
    done = write_parts(store, parts)
    if done.failed:
        raise StorageError(f"{len(done.failed)} records were not moved: run the recount again.")
    report.moved += len(done.applied)
    report.moved_before += len(done.duplicates)


def moves(item: dict[str, Any], now: datetime) -> list[RollupUpdate]:
    """A failed request's move in each of its cells that still exist."""
    expired = int(now.timestamp())
    return [
        replace(update, deltas=dict(MOVE))
        for update in rollup_updates(item)
        if update.expires_at is None or update.expires_at > expired
    ]
