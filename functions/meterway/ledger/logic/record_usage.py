"""Settling a request: its ledger record and its counters written together, exactly once.

If the ledger stays unavailable after boto3's retries, the settlement is parked on the spill
queue, whose replay function writes it with the same conditional transaction. Only when both fail
is the settlement logged whole (it holds no secret and no prompt) so that it can still be
recovered from the logs; that is also counted as a metric to alarm on.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

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


def settle(
    record: UsageRecord,
    reservation: Reservation,
    ledger: LedgerStore,
    spill: SpillQueue | None,
    retention_days: int,
    attempts: Sequence[UsageRecord] = (),
) -> SaveOutcome:
    """Settle a finished request: its ledger record, and the counters it reserved adjusted by its
    real cost and tokens, written together exactly once (see ``save_settlement``). Its failed
    ``attempts`` (before a fallback) are records of their own, written first and without
    counters: they billed nothing, and the request reserved once."""
    for attempt in attempts:
        save_settlement(attempt.to_item(retention_days=retention_days), ledger, spill)
    counters = counter_deltas(reservation, record.cost_usd, record.tokens.total_tokens)
    return save_settlement(record.to_item(retention_days=retention_days), ledger, spill, counters)


def save_settlement(
    item: dict[str, Any], ledger: LedgerStore, spill: SpillQueue | None, counters: list[CounterDelta] | None = None
) -> SaveOutcome:
    """Write a ledger item and its counters exactly once, or spill them, or log them whole."""
    counters = counters or []
    try:
        return "written" if ledger.settle(item, counters) else "duplicate"
    except StorageError:
        logger.warning("ledger write failed; spilling the record", extra={"request_id": item["request_id"]})
    if spill is not None:
        try:
            spill.send(item, counters)
            return "spilled"
        except StorageError:
            logger.exception("spill queue unavailable", extra={"request_id": item["request_id"]})
    logger.error("usage record not saved", extra={"usage_record": encode_settlement(item, counters)})
    count("UsageRecordsUnsaved")
    return "unsaved"
