"""Request rows read straight from a page of DynamoDB's JSON are the rows of the deserialized
records, byte for byte, for every record the ledger writes and for any other shape an item might
have: read the direct way (msgspec's structs), or through ``deserialize`` for a record, or a page,
the direct way does not read exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterway.accounts.models import ApiKey, CounterDelta
from meterway.core.aws import deserialize, serialize
from meterway.exports.logic.csv_format import REQUEST_COLUMNS, csv_text, request_row
from meterway.exports.logic.wire_rows import UnusualAttribute, direct_rows, page_rows
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


def page_of(*items: dict[str, Any]) -> bytes:
    """A page's ``Items`` as the Query's answer carries them: a JSON array."""
    return json.dumps(list(items)).encode("utf-8")


def wire_row(item: dict[str, Any]) -> list[str]:
    """The row ``page_rows`` gives for a page of the one item."""
    (row,) = page_rows(page_of(item))
    return row


def reference_row(item: dict[str, Any]) -> bytes:
    return csv_of(request_row(deserialize(item)))


@settings(max_examples=400, deadline=None)
@given(record=records, retention_days=st.sampled_from([0, 30]), carried=counters)
def test_every_record_the_ledger_writes_is_read_directly_into_the_deserialized_records_row(
    record, retention_days, carried
):
    # Given a record as the settle writes it: with the counters it carries when it has any
    wire = on_the_wire(with_counters(record.to_item(retention_days=retention_days), carried))

    (direct,) = direct_rows(page_of(wire))  # no fallback: the ledger's own shapes are all read directly

    assert csv_of(direct) == reference_row(wire)


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
    assert csv_of(wire_row(item)) == reference_row(item)


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

    assert csv_of(wire_row(item)) == reference_row(item)


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
    rows = direct_rows(page_of(*items))
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
        direct_rows(page_of(item | {"latency_ms": {"N": "1.5"}}))
    with pytest.raises(msgspec.ValidationError):
        direct_rows(page_of(item | {"user": {"NULL": True}}))


def plain_item(**changes: Any) -> dict[str, Any]:
    record = UsageRecord(
        "r", datetime(2026, 11, 1, tzinfo=UTC), ApiKey("k", "a", "n"), "m", "p", "e", True, user="u", latency_ms=5
    )
    return on_the_wire(record.to_item()) | changes


def test_an_unusual_record_goes_the_deserialized_way_and_the_rest_of_its_page_stays_direct():
    items = [plain_item(), plain_item(latency_ms={"N": "1.5"}), plain_item(request_id={"S": "r2"})]

    rows = page_rows(page_of(*items))

    assert [csv_of(row) for row in rows] == [reference_row(item) for item in items]
    assert rows[1][REQUEST_COLUMNS.index("latency_ms")] == "1.5"  # as the Decimal prints it


@pytest.mark.parametrize(
    "unknown",
    [{"NULL": True}, {"L": [{"S": "a"}]}, {"SS": ["a", "b"]}, {"NS": ["1"]}, {"M": {"a": {"NULL": True}}}],
    ids=lambda unknown: next(iter(unknown)),
)
def test_a_page_with_a_type_the_structs_do_not_know_is_read_whole_the_deserialized_way(unknown):
    # Given a page whose second record has a column of a type the ledger never writes
    items = [plain_item(), plain_item(app=unknown), plain_item(user=unknown)]
    with pytest.raises(msgspec.ValidationError):
        direct_rows(page_of(*items))

    # Then every row of it is the deserialized record's
    assert [csv_of(row) for row in page_rows(page_of(*items))] == [reference_row(item) for item in items]


def test_attributes_no_column_reads_are_skipped_whatever_their_type():
    item = plain_item(
        counters={"L": [{"M": {"pk": {"S": "KEY#k"}, "deltas": {"M": {"inflight": {"N": "-1"}}}}}]},
        created_sk={"S": "2026-11-01T00:00:00.000Z#r"},
        expires_at={"N": "1.8E+9"},
        retired={"NULL": True},
    )

    (row,) = direct_rows(page_of(item))

    assert csv_of(row) == reference_row(item)


@pytest.mark.parametrize(
    "text",
    ["caf\u00e9", "\u65e5\u672c\u8a9e", "\U0001f600 emoji", 'quote " and, comma', "line\r\nbreak", "\\back\\slash"],
)
@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "utf-8"])
def test_text_is_read_whatever_script_and_however_the_json_escapes_it(text, ascii_only):
    # DynamoDB may send non-ASCII text as UTF-8 or escaped (\uXXXX, a surrogate pair past the BMP)
    item = plain_item(user={"S": text}, model={"S": "=" + text})
    page = json.dumps([item], ensure_ascii=ascii_only).encode("utf-8")

    (row,) = direct_rows(page)

    assert csv_of(row) == reference_row(item)
    assert row[REQUEST_COLUMNS.index("user")] == text and row[REQUEST_COLUMNS.index("model")] == "'=" + text


def test_a_lone_surrogate_escape_is_read_the_way_json_reads_it():
    # msgspec refuses "\ud800" (half a character); json takes it, and so does the fallback
    item = plain_item(user={"S": "a\ud800b"})
    page = json.dumps([item]).encode("utf-8")

    assert csv_of(wire_row(item)) == reference_row(item)
    assert page_rows(page)[0][REQUEST_COLUMNS.index("user")] == "a\ud800b"


def test_a_missing_attribute_and_a_json_null_are_empty_cells():
    with_null, without = plain_item(user=None), plain_item()
    del without["user"]

    rows = direct_rows(page_of(with_null, without))

    assert rows[0] == rows[1] and rows[0][REQUEST_COLUMNS.index("user")] == ""
    assert csv_of(rows[1]) == reference_row(without)


def test_an_empty_page_has_no_rows():
    assert page_rows(b"[]") == []
