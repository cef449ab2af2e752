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

from meterway.accounts.models import ApiKey, CounterDelta
from meterway.core.aws import deserialize, serialize
from meterway.exports.logic.csv_format import REQUEST_COLUMNS, csv_text, request_row
from meterway.exports.logic.wire_rows import UnusualAttribute, direct_request_row, wire_request_row
from meterway.ledger.logic.record_usage import with_counters
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

# What a settled record carries for the aggregator (``record_usage.with_counters``): maps of
# whole numbers and amounts (2E-7 as DynamoDB may hold it), none of them a CSV column.
counters = st.lists(
    st.builds(
        CounterDelta,
        pk=texts.filter(bool),
        sk=texts.filter(bool),
        deltas=st.dictionaries(
            st.sampled_from(["spent_usd", "inflight", "requests", "tokens"]),
            st.integers(-1, 10**9) | money | st.just(Decimal("2E-7")),
            min_size=1,
        ),
        expires_at=st.integers(0, 2**31) | st.none(),
    ),
    max_size=3,
)


def on_the_wire(item: dict[str, Any]) -> dict[str, Any]:
    """The item as a Query answer carries it: DynamoDB's JSON, through JSON text and back."""
    loaded: dict[str, Any] = json.loads(json.dumps(serialize(item)))
    return loaded


def csv_of(row: list[Any]) -> bytes:
    return csv_text([row]).encode("utf-8", errors="surrogatepass")


@settings(max_examples=400, deadline=None)
@given(record=records, retention_days=st.sampled_from([0, 30]), carried=counters)
def test_every_record_the_ledger_writes_is_read_directly_into_the_deserialized_records_row(
    record, retention_days, carried
):
    # Given a record as the settle writes it: with the counters it carries when it has any
    wire = on_the_wire(with_counters(record.to_item(retention_days=retention_days), carried))

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


def test_a_settled_fallback_and_its_attempt_are_read_directly_into_the_deserialized_records_rows():
    # Given a request served by a fallback route after one failed attempt, settled with its counters
    key = ApiKey("key_1", "acct_1", "prod", member="alice@example.com")
    served = UsageRecord(
        "gen-1",
        datetime(2026, 11, 1, 12, tzinfo=UTC),
        key,
        "anthropic/claude-sonnet-4-5",
        "bedrock",
        "messages",
        True,
        tokens=TokenUsage(input_tokens=1000, output_tokens=100),
        cost_usd=Decimal("0.0045"),
        prices={"input_mtok": Decimal("3"), "output_mtok": Decimal("15")},
        route="bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        attempts=2,
    )
    failed = UsageRecord(
        "gen-1.1",
        served.created_at,
        key,
        served.model,
        "anthropic",
        "messages",
        True,
        status="error",
        error_code="overloaded",
        upstream_status=529,
        attempt_of="gen-1",
        attempt=1,
    )
    carried = [
        CounterDelta("KEY#key_1", "SPEND#2026-11", {"spent_usd": Decimal("0.0045"), "inflight": -1}, 1_800_000_000),
        CounterDelta("ACCOUNT#acct_1", "BALANCE", {"spent_usd": Decimal("2E-7"), "inflight": -1}),
    ]
    items = [on_the_wire(failed.to_item()), on_the_wire(with_counters(served.to_item(retention_days=30), carried))]
    assert "L" in items[1]["counters"]

    # Then each row is the deserialized record's, read the direct way, route and attempts included
    rows = [direct_request_row(item) for item in items]
    assert [csv_of(row) for row in rows] == [csv_of(request_row(deserialize(item))) for item in items]
    columns = dict(zip(REQUEST_COLUMNS, rows[1], strict=True)), dict(zip(REQUEST_COLUMNS, rows[0], strict=True))
    assert columns[0]["route"] == served.route and columns[0]["attempts"] == "2"
    assert (columns[1]["attempt_of"], columns[1]["attempt"], columns[1]["upstream_status"]) == ("gen-1", "1", "529")
    assert "counters" not in REQUEST_COLUMNS


def test_the_direct_way_refuses_what_it_cannot_read_exactly():
    item = on_the_wire(
        UsageRecord("r", datetime(2026, 11, 1, tzinfo=UTC), ApiKey("k", "a", "n"), "m", "p", "e", True).to_item()
    )
    with pytest.raises(UnusualAttribute):
        direct_request_row(item | {"latency_ms": {"N": "1.5"}})
