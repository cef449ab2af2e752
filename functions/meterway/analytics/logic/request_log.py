"""The request log: ledger records of a window, newest first, shaped for the console.

A request that fell back has, besides its own record, a record per failed attempt
(``<request id>.<n>``, the same ``created_at``): they sort next to it, and the log shows them
under it (``attempts``), not as requests of their own."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from meterway.core.errors import InvalidRequest
from meterway.core.json_limits import loads
from meterway.core.money import money
from meterway.ledger.dal.ledger_store import LedgerQuery, LedgerStore


def entry(item: dict[str, Any], attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": item["request_id"],
        "created_at": item["created_at"],
        "model": item["model"],
        "provider": item.get("provider"),
        "route": item.get("route"),
        "attempts": [attempt_entry(attempt) for attempt in attempts or ()],
        "key_id": item["key_id"],
        "key_name": item.get("key_name", ""),
        "member": item.get("member") or None,
        "user": item.get("user"),
        "app": item.get("app"),
        "status": item.get("status", "ok"),
        "endpoint": item.get("endpoint"),
        "error_code": item.get("error_code"),
        "upstream_status": item.get("upstream_status"),
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
        "cost": money(item.get("cost_usd")),
        "latency_ms": item.get("latency_ms", 0),
        "ttft_ms": item.get("ttft_ms"),
    }


def attempt_entry(item: dict[str, Any]) -> dict[str, Any]:
    """A failed attempt, as shown under its request."""
    return {
        "id": item["request_id"],
        "attempt": item.get("attempt"),
        "provider": item.get("provider"),
        "route": item.get("route"),
        "status": item.get("status", "error"),
        "error_code": item.get("error_code"),
        "upstream_status": item.get("upstream_status"),
        "latency_ms": item.get("latency_ms", 0),
        "cost": money(item.get("cost_usd")),
    }


def request_page(ledger: LedgerStore, query: LedgerQuery, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of the log: at most ``limit`` requests, each with its attempts, and the cursor of
    the next, older page (None at the end)."""
    items: list[dict[str, Any]] = []
    last_key = decode_cursor(cursor, query) if cursor else None
    while True:
        wanted = limit - sum(1 for item in items if not item.get("attempt_of"))
        more, last_key = ledger.page(query, wanted, last_key)
        # Newest first, a request's attempts come just before it: the page ends at its last request.
        requests = [n for n, item in enumerate(more) if not item.get("attempt_of")]
        if len(requests) >= wanted:
            end = requests[wanted - 1]
            if last_key or end + 1 < len(more):
                last_key = index_key(more[end], query)
            items += more[: end + 1]
            break
        items += more
        if not last_key:
            break
    rows = _grouped(items, orphans=query.status is None)
    return {"data": rows, "next_cursor": encode_cursor(last_key) if last_key else None}


def _grouped(items: list[dict[str, Any]], *, orphans: bool = True) -> list[dict[str, Any]]:
    """Each request's entry with its attempts; an attempt whose request is not there is shown on
    its own (``orphans``: its request is not written yet), or left out (its request is not of the
    status asked for)."""
    rows: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    for item in items:
        if item.get("attempt_of"):
            pending.append(item)
            continue
        own = sorted((a for a in pending if a["attempt_of"] == item["request_id"]), key=lambda a: a.get("attempt", 0))
        if orphans:
            rows.extend(entry(orphan) for orphan in pending if orphan["attempt_of"] != item["request_id"])
        rows.append(entry(item, own))
        pending = []
    if orphans:
        rows.extend(entry(orphan) for orphan in pending)
    return rows


def index_key(item: dict[str, Any], query: LedgerQuery) -> dict[str, Any]:
    """The index key of a record, as DynamoDB gives it for a page's end (a page may start after it)."""
    owner_field = "key_id" if query.key_id else "account_id"
    return {name: {"S": item[name]} for name in (owner_field, "created_sk", "request_id")}


def encode_cursor(last_key: dict[str, Any]) -> str:
    """A page's last key as an opaque token (the index's own key, in DynamoDB JSON)."""
    return base64.urlsafe_b64encode(json.dumps(last_key, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str, query: LedgerQuery) -> dict[str, Any]:
    """The start key in a cursor; one that was not made for this query is a 400.

    A cursor is the client's text: everything in it is checked before it reaches DynamoDB (its
    fields are the index's key, each a string attribute), so a forged one is a 400, never a 500.
    """
    owner_field = "key_id" if query.key_id else "account_id"
    try:
        last_key = loads(base64.urlsafe_b64decode(cursor.encode("ascii")).decode("utf-8"), limit=2)
    except (ValueError, binascii.Error) as exc:
        raise _bad_cursor("The cursor is not valid.") from exc
    if not (
        isinstance(last_key, dict)
        and set(last_key) == {owner_field, "created_sk", "request_id"}
        and all(
            isinstance(value, dict) and set(value) == {"S"} and isinstance(value["S"], str)
            for value in last_key.values()
        )
    ):
        raise _bad_cursor("The cursor is not valid.")
    position = last_key["created_sk"]["S"]
    if last_key[owner_field]["S"] != (query.key_id or query.account_id) or not query.start <= position <= query.end:
        raise _bad_cursor("The cursor belongs to another query.")
    return last_key


def _bad_cursor(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_cursor")
