"""The usage record: one ledger item per request, every field of DESIGN §3."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from meterway.dal.ledger_store import LedgerStore, SpillQueue, encode_record
from meterway.errors import StorageError
from meterway.logic.keys import ApiKey, utc_iso
from meterway.logic.quotas import CounterDelta, Reservation
from meterway.logic.usage import TokenUsage
from meterway.observability import count, logger

Status = Literal["ok", "error", "partial"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def new_request_id(at: datetime | None = None, entropy: str | None = None) -> str:
    """``gen-`` + 12 hex digits of milliseconds + 16 random hex: unique and roughly time-ordered.
    ``at`` and ``entropy`` (16 hex digits) default to now and fresh random ones."""
    milliseconds = time.time_ns() // 1_000_000 if at is None else (at - EPOCH) // timedelta(milliseconds=1)
    return f"gen-{milliseconds:012x}{entropy or secrets.token_hex(8)}"


@dataclass(slots=True)
class UsageRecord:
    """What the ledger keeps of one request; built by the proxy, written once."""

    request_id: str
    created_at: datetime
    key: ApiKey
    model: str
    provider: str
    endpoint: str
    streamed: bool
    status: Status = "ok"
    usage: TokenUsage = field(default_factory=TokenUsage)
    usage_estimated: bool = False
    cost_usd: Decimal = Decimal(0)
    prices: dict[str, Decimal] = field(default_factory=dict)
    latency_ms: int = 0
    ttft_ms: int | None = None
    user: str | None = None
    app: str | None = None
    finish_reason: str | None = None
    error_code: str | None = None
    upstream_status: int | None = None

    def to_item(self, *, retention_days: int = 0) -> dict[str, Any]:
        """The DynamoDB item (plain Python values; Decimals for money and rates)."""
        created = utc_iso(self.created_at)
        item: dict[str, Any] = {
            "request_id": self.request_id,
            "created_at": created,
            "created_sk": f"{created}#{self.request_id}",
            "account_id": self.key.account_id,
            "key_id": self.key.key_id,
            "key_name": self.key.name,
            "member": self.key.member or "",
            "model": self.model,
            "provider": self.provider,
            "endpoint": self.endpoint,
            "streamed": self.streamed,
            "status": self.status,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "reasoning_tokens": self.usage.reasoning_tokens,
            "cache_creation_tokens": self.usage.cache_creation_tokens,
            "cache_creation_5m_tokens": self.usage.cache_creation_5m_tokens,
            "cache_creation_1h_tokens": self.usage.cache_creation_1h_tokens,
            "cache_read_tokens": self.usage.cache_read_tokens,
            "total_tokens": self.usage.total_tokens,
            "usage_estimated": self.usage_estimated,
            "cost_usd": self.cost_usd,
            "prices": dict(self.prices),
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "user": self.user,
            "app": self.app,
            "finish_reason": self.finish_reason,
            "error_code": self.error_code,
            "upstream_status": self.upstream_status,
        }
        if retention_days > 0:
            item["expires_at"] = int((self.created_at + timedelta(days=retention_days)).timestamp())
        return {name: value for name, value in item.items() if value is not None}


def now_utc() -> datetime:
    return datetime.now(UTC)


SaveOutcome = Literal["written", "duplicate", "spilled", "unsaved"]


def settle_request(
    record: UsageRecord, reservation: Reservation, ledger: LedgerStore, spill: SpillQueue | None, retention_days: int
) -> SaveOutcome:
    """Settle a finished request: its ledger record and the counters it reserved, adjusted by its
    real cost and tokens, written together exactly once (see `save_record`)."""
    counters = reservation.settlement(record.cost_usd, record.usage.total_tokens)
    return save_record(record.to_item(retention_days=retention_days), ledger, spill, counters)


def save_record(
    item: dict[str, Any], ledger: LedgerStore, spill: SpillQueue | None, counters: list[CounterDelta] | None = None
) -> SaveOutcome:
    """Write a settled record and its counters exactly once; if the ledger stays unavailable after
    boto3's retries, park the settlement on the spill queue, whose replay function writes it with
    the same conditional transaction.

    Only when both fail is the settlement logged whole (it holds no secret and no prompt) so that
    it can still be recovered from the logs; that is also counted as a metric to alarm on.
    """
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
    logger.error("usage record not saved", extra={"usage_record": encode_record(item, counters)})
    count("UsageRecordsUnsaved")
    return "unsaved"
