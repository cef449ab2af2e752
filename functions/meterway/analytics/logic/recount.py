"""Records that versions before a change counted otherwise, counted again from the ledger.

``recount_errors``: failed requests that versions before the errors apart counted as requests,
moved into errors.

Those versions added every record of a client request to its cells' ``requests``, served or not.
This one counts a failed request (nothing served, nothing billed) in ``errors`` instead, from the
date its account's marker holds (``rollups.start_changes``: the first batch of this version, plus
the margin an older aggregator may still be running); a failed request from before that date is
still counted as a request, by whichever version counts it, so that each record is counted one
way. ``recount_errors`` then moves each such record: ``requests`` −1 and ``errors`` +1 in each of
its cells, with a marker of its own written in the same transaction, so a record is moved once
however often it runs. The moves are additions, so they are exact while the aggregator runs.

``add_attribution``: records that versions before the user and app dimensions counted without
them, added to their user's and app's cells (the ``user``, ``app``, and their models'), from the
account's ``attribution`` date back, each with its own kept marker in the same transaction.

The ledger is the source: a record it no longer holds (``MW_LEDGER_RETENTION_DAYS``) stays
counted as before (a failed request as a request; by no user or app). Minute and 10-minute cells
past their 8 days are gone and are not written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from meterway.analytics.dal.rollup_store import RollupStore
from meterway.analytics.logic.rollups import (
    ALL_TIME,
    attributed,
    counted,
    failed,
    rollup_updates,
    start_changes,
    write_parts,
)
from meterway.analytics.models import Change, Part, PartKind, RollupUpdate
from meterway.core.clock import EARLIEST, utc_iso
from meterway.core.errors import StorageError
from meterway.ledger.dal.ledger_store import LedgerQuery, LedgerStore

# The records read from the ledger at a time.
PAGE = 1000
# What moving a failed request does to each of its cells.
MOVE: dict[str, Any] = {"requests": -1, "errors": 1}


@dataclass
class Recount:
    """What a recount did: records counted again now, by a run before, and the date of the change
    from which the account's records are counted as this version counts them."""

    account_id: str
    changed_from: datetime | None
    moved: int = 0
    moved_before: int = 0
    waiting_until: datetime | None = None


def recount_errors(store: RollupStore, ledger: LedgerStore, account_id: str, now: datetime) -> Recount:
    """Move every failed request of the account from before its errors-apart date into errors.
    Does nothing while records from before that date may still come (``waiting_until``)."""
    return _recount(store, ledger, account_id, now, "errors-apart", "recount", moves, status="error")


def add_attribution(store: RollupStore, ledger: LedgerStore, account_id: str, now: datetime) -> Recount:
    """Add every record of the account from before its attribution date to its user and app cells.
    Does nothing while records from before that date may still come (``waiting_until``)."""
    return _recount(store, ledger, account_id, now, "attribution", "attribution", attribution_cells)


def _recount(
    store: RollupStore,
    ledger: LedgerStore,
    account_id: str,
    now: datetime,
    change: Change,
    kind: PartKind,
    updates: Callable[[dict[str, Any], datetime], list[RollupUpdate]],
    status: str | None = None,
) -> Recount:
    """Write ``updates`` of each counted record (of ``status``) from before the account's date of
    ``change``, once, with a marker of ``kind``."""
    since = start_changes(store, [account_id], now).since(account_id, change)
    report = Recount(account_id, since)
    if since == ALL_TIME:
        return report  # every record of the account was counted by this version
    if since > now:
        report.waiting_until = since
        return report
    query = LedgerQuery(account_id, utc_iso(EARLIEST), utc_iso(since), status=status)
    start_key: dict[str, Any] | None = None
    while True:
        items, start_key = ledger.page(query, PAGE, start_key)
        chosen = [item for item in items if counted(item) and (status is None or failed(item))]
        parts = [Part(item["request_id"], kind, item["account_id"], updates(item, now)) for item in chosen]
        _write(store, parts, report)
        if start_key is None:
            return report


def _write(store: RollupStore, parts: list[Part], report: Recount) -> None:
    done = write_parts(store, parts)
    if done.failed:
        raise StorageError(f"{len(done.failed)} records were not counted again: run the command again.")
    report.moved += len(done.applied)
    report.moved_before += len(done.duplicates)


def _kept(item: dict[str, Any], now: datetime) -> list[RollupUpdate]:
    """A record's cells that still exist (minute and 10-minute ones expire)."""
    expired = int(now.timestamp())
    return [update for update in rollup_updates(item) if update.expires_at is None or update.expires_at > expired]


def moves(item: dict[str, Any], now: datetime) -> list[RollupUpdate]:
    """A failed request's move in each of its cells that still exist, but its user's and app's:
    those never counted it as a request (``attribution_cells``)."""
    return [replace(update, deltas=dict(MOVE)) for update in _kept(item, now) if not attributed(update.dimension)]


def attribution_cells(item: dict[str, Any], now: datetime) -> list[RollupUpdate]:
    """A record's additions to its user's and app's cells that still exist, as this version
    counts it (a failed request as an error, whichever its account's errors-apart date): the
    aggregator writes no such cell for a record from before the attribution date, which is never
    before the errors-apart date, so these cells never counted a failed request as a request, and
    the two commands may run in either order."""
    return [update for update in _kept(item, now) if attributed(update.dimension)]
