"""Settling a request: one conditional put of its ledger record, exactly once.

The record carries what it adds to its key's and account's counters (``counters``: its real cost
and tokens, and the release of what it held in flight); the AggregatorFunction adds them from the
ledger's stream, exactly once and merged with the other records of its batch, in the transaction
that counts the record in the rollups. So the client waits for one single-item write, and a busy
key's counters are written once a batch, not once a request.

If the ledger stays unavailable after the client's retries, the settlement is parked on the spill
queue, whose replay function writes it with the same conditional put. Only when both fail is the
settlement logged whole (it holds no secret and no prompt) so that it can still be recovered from
the logs; that is also counted as a metric to alarm on.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import anyio

from meterway.accounts.logic.limits import counter_deltas
from meterway.accounts.models import CounterDelta, Reservation
from meterway.core.errors import StorageError
from meterway.core.observability import count, logger
from meterway.ledger.dal.ledger_store import LedgerStore
from meterway.ledger.dal.spill_queue import SpillQueue, encode_settlement
from meterway.ledger.models import UsageRecord

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SaveOutcome = Literal["written", "duplicate", "spilled", "unsaved"]


def new_request_id(at: datetime | None = None, entropy: str | None = None) -> str:
    """``gen-`` + 12 hex digits of milliseconds + 16 random hex: unique and roughly time-ordered.
    ``at`` and ``entropy`` (16 hex digits) default to now and fresh random ones."""
    milliseconds = time.time_ns() // 1_000_000 if at is None else (at - EPOCH) // timedelta(milliseconds=1)
    return f"gen-{milliseconds:012x}{entropy or secrets.token_hex(8)}"


async def settle(
    record: UsageRecord,
    reservation: Reservation,
    ledger: LedgerStore,
    spill: SpillQueue | None,
    retention_days: int,
    attempts: Sequence[UsageRecord] = (),
) -> SaveOutcome:
    """Settle a finished request: its ledger record, carrying the counters it reserved adjusted by
    its real cost and tokens, written exactly once (see ``save_settlement``). Its failed
    ``attempts`` (before a fallback) are records of their own, written first and without
    counters: they billed nothing, and the request reserved once."""
    for attempt in attempts:
        await save_settlement(attempt.to_item(retention_days=retention_days), ledger, spill)
    counters = counter_deltas(reservation, record.cost_usd, record.tokens.total_tokens)
    return await save_settlement(with_counters(record.to_item(retention_days=retention_days), counters), ledger, spill)


def with_counters(item: dict[str, Any], counters: list[CounterDelta]) -> dict[str, Any]:
    """A ledger item carrying the counter deltas the aggregator adds when it counts the record."""
    return item | {"counters": [counter.to_item() for counter in counters]} if counters else item


async def save_settlement(item: dict[str, Any], ledger: LedgerStore, spill: SpillQueue | None) -> SaveOutcome:
    """Write a ledger item exactly once, or spill it, or log it whole. The write runs on the
    event loop; the spill queue (boto3, only after the write failed) in a thread."""
    try:
        return "written" if await ledger.write(item) else "duplicate"
    except StorageError:
        logger.warning("ledger write failed; spilling the record", extra={"request_id": item["request_id"]})
    if spill is not None:
        try:
            await anyio.to_thread.run_sync(spill.send, item)
            return "spilled"
        except StorageError:
            logger.exception("spill queue unavailable", extra={"request_id": item["request_id"]})
    logger.error("usage record not saved", extra={"usage_record": encode_settlement(item)})
    count("UsageRecordsUnsaved")
    return "unsaved"
