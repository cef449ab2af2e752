"""The request log: ledger records of a window, newest first, shaped for the console."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from meterway.dal.ledger_store import LedgerQuery, LedgerStore


def entry(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["request_id"],
        "created_at": item["created_at"],
        "model": item["model"],
        "key_id": item["key_id"],
        "key_name": item.get("key_name", ""),
        "member": item.get("member") or None,
        "status": item.get("status", "ok"),
        "streamed": bool(item.get("streamed")),
        "tokens": {
            "total": item.get("total_tokens", 0),
            "input": item.get("input_tokens", 0),
            "output": item.get("output_tokens", 0),
            "reasoning": item.get("reasoning_tokens", 0),
            "cache_creation": item.get("cache_creation_tokens", 0),
            "cache_creation_5m": item.get("cache_creation_5m_tokens", 0),
            "cache_creation_1h": item.get("cache_creation_1h_tokens", 0),
            "cache_read": item.get("cache_read_tokens", 0),
        },
        "usage_estimated": bool(item.get("usage_estimated")),
        "cost": format(Decimal(str(item.get("cost_usd", 0))).normalize(), "f"),
        "latency_ms": item.get("latency_ms", 0),
        "ttft_ms": item.get("ttft_ms"),
    }


def request_page(ledger: LedgerStore, query: LedgerQuery, limit: int, cursor: str | None) -> dict[str, Any]:
    items, next_cursor = ledger.page(query, limit, cursor)
    return {"data": [entry(item) for item in items], "next_cursor": next_cursor}
