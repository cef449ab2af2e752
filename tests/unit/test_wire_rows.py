"""Request rows read straight from DynamoDB's JSON are the rows of the deserialized records, byte
for byte, for every record the ledger writes and for any other shape an item might have."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterway.accounts.models import ApiKey
from meterway.core.aws import deserialize, serialize
from meterway.exports.logic.csv_format import csv_text, request_row
from meterway.exports.logic.wire_rows import UnusualAttribute, direct_request_row, wire_request_row
from meterway.ledger.models import TokenUsage, UsageRecord

PRICE_NAMES = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_5m_mtok",
    "cache_write_1h_mtok",
    "web_search_kcount",
)
# Text a user or an upstream controls: spreadsheet formulas, CSV's own characters, any script.
texts = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(["=SUM(A1)", "+1", "-2", "@x", "\tTab", "\rCR", 'say "hi", ok', "a\nb", "", "0", "00", "1E3"]),
)
whole = st.integers(0, 10**12)
money = st.one_of(
    st.decimals(min_value=0, max_value=10**6, places=12, allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal("0"), Decimal("1E-7"), Decimal("100"), Decimal("2.50"), Decimal("0.000195")]),
)
keys = st.builds(
    ApiKey, key_id=st.text(min_size=1, max_size=20), account_id=texts, name=texts, member=texts | st.none()
)
records = st.builds(
    UsageRecord,
    request_id=st.text(min_size=1, max_size=40),
    created_at=st.datetimes(datetime(2020, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC)),
    key=keys,
    model=texts,
    provider=texts,
    endpoint=texts,
    streamed=st.booleans(),
    status=st.sampled_from(["ok", "error", "partial"]),
    tokens=st.builds(
        TokenUsage,
        input_tokens=whole,
        output_tokens=whole,
        reasoning_tokens=whole,
        cache_creation_5m_tokens=whole,
        cache_creation_1h_tokens=whole,
        cache_read_tokens=whole,
        web_searches=st.integers(0, 50),
    ),
    usage_estimated=st.booleans(),
    cost_usd=money,
    prices=st.dictionaries(st.sampled_from(PRICE_NAMES), money),
    latency_ms=whole,
    ttft_ms=whole | st.none(),
    user=texts | st.none(),
    app=texts | st.none(),
    finish_reason=texts | st.none(),
    error_code=texts | st.none(),
    upstream_status=st.integers(100, 599) | st.none(),
    route=texts | st.none(),
    attempts=st.integers(2, 5) | st.none(),
    attempt_of=texts | st.none(),
    attempt=st.integers(1, 5) | st.none(),
)


def on_the_wire(item: dict[str, Any]) -> dict[str, Any]:
    """The item as a Query answer carries it: DynamoDB's JSON, through JSON text and back."""
    loaded: dict[str, Any] = json.loads(json.dumps(serialize(item)))
    return loaded


def csv_of(row: list[Any]) -> bytes:
    return csv_text([row]).encode("utf-8", errors="surrogatepass")


@settings(max_examples=400, deadline=None)
@given(record=records, retention_days=st.sampled_from([0, 30]))
def test_every_record_the_ledger_writes_is_read_directly_into_the_deserialized_records_row(record, retention_days):
    wire = on_the_wire(record.to_item(retention_days=retention_days))

    direct = direct_request_row(wire)  # no fallback: the ledger's own shapes are all read directly

    assert csv_of(direct) == csv_of(request_row(deserialize(wire)))


@pytest.mark.parametrize(
    "number",
    [
        "0",
        "7",
        "100",
        "1E+2",
        "1e2",
        "0.150",
        "0.15",
        "1E-7",
        "0.0000001",
        "-0",
        "-3.5",
        "007",
        "12345678901234567890123456789",
        "1" * 38,
    ],
)
def test_numbers_in_any_notation_give_the_deserialized_records_text(number):
    # Given a record whose cost, a rate and a token count are written as DynamoDB may send them
    item = on_the_wire(
        UsageRecord("r", datetime(2026, 11, 1, tzinfo=UTC), ApiKey("k", "a", "n"), "m", "p", "e", False).to_item()
    )
    item["cost_usd"] = {"N": number}
    item["prices"] = {"M": {"input_mtok": {"N": number}}}
    item["input_tokens"] = {"N": number}

    # Then the row is the deserialized record's, directly or through the fallback
    assert csv_of(wire_request_row(item)) == csv_of(request_row(deserialize(item)))


UNUSUAL = [
    {"user": {"NULL": True}},
    {"user": {"N": "5"}},
    {"input_tokens": {"S": "12"}},
    {"input_tokens": {"N": "1.5"}},
    {"cost_usd": {"S": "0.25"}},
    {"prices": {"NULL": True}},
    {"prices": {"M": {"input_mtok": {"S": "0.15"}}}},
    {"prices": {"M": {"unknown_rate": {"N": "3"}}}},
    {"price_input_mtok": {"N": "9"}},
    {"app": {"L": [{"S": "a"}, {"N": "1"}]}},
    {"streamed": {"N": "1"}},
]


@pytest.mark.parametrize("change", UNUSUAL, ids=lambda change: json.dumps(change))
def test_a_shape_the_ledger_does_not_write_goes_the_deserialized_way(change):
    base = UsageRecord(
        "r", datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=1), ApiKey("k", "a", "n"), "m", "p", "e", True
    )
    item = on_the_wire(base.to_item()) | change

    assert csv_of(wire_request_row(item)) == csv_of(request_row(deserialize(item)))


def test_the_direct_way_refuses_what_it_cannot_read_exactly():
    item = on_the_wire(
        UsageRecord("r", datetime(2026, 11, 1, tzinfo=UTC), ApiKey("k", "a", "n"), "m", "p", "e", True).to_item()
    )
    with pytest.raises(UnusualAttribute):
        direct_request_row(item | {"latency_ms": {"N": "1.5"}})
