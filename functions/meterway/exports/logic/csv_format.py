"""The CSV files of exports: their columns, and cells written so that a spreadsheet never runs
one as a formula (RFC 4180 otherwise)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from meterway.analytics.models import COUNTERS
from meterway.core.money import money, to_decimal
from meterway.ledger.models import TOKEN_FIELDS

REQUEST_COLUMNS: tuple[str, ...] = (
    "request_id",
    "created_at",
    "account_id",
    "key_id",
    "key_name",
    "member",
    "model",
    "provider",
    "endpoint",
    "streamed",
    "status",
    *TOKEN_FIELDS,
    "cost_usd",
    "price_input_mtok",
    "price_output_mtok",
    "price_cache_read_mtok",
    "price_cache_write_5m_mtok",
    "price_cache_write_1h_mtok",
    "web_searches",
    "price_web_search_kcount",
    "usage_estimated",
    "latency_ms",
    "ttft_ms",
    "user",
    "app",
    "finish_reason",
    "error_code",
    "upstream_status",
    # Routes and fallbacks: the model that served, when not ``model``; how many attempts the
    # request took; on a failed attempt's own row, the request it was made for and its number.
    "route",
    "attempts",
    "attempt_of",
    "attempt",
)
# What a request row is read from: its columns, the prices in their map (``price_<rate>``).
LEDGER_FIELDS: tuple[str, ...] = (*(c for c in REQUEST_COLUMNS if not c.startswith("price_")), "prices")
# The rollups' own counters, in their order: the activity file is the rollups, bucket by bucket.
ACTIVITY_COLUMNS: tuple[str, ...] = ("bucket_start", "granularity", "group_by", "group", "name", *COUNTERS)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A CSV cell: numbers stay numbers; text that a spreadsheet would run as a formula gets a
    leading apostrophe (OWASP's advice for CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return money(value)
    if isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def request_row(item: dict[str, Any]) -> list[Any]:
    prices = item.get("prices") or {}
    values = {**item, **{f"price_{name}": to_decimal(rate) for name, rate in prices.items()}}
    if "cost_usd" in values:
        values["cost_usd"] = to_decimal(values["cost_usd"])
    return [cell(values.get(column)) for column in REQUEST_COLUMNS]


def csv_text(rows: Iterable[list[Any]]) -> str:
    """RFC 4180: comma separated, CRLF line ends, quotes doubled, fields quoted when needed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue()
