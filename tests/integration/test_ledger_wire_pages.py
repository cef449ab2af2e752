"""The ledger's pages for exports, read through a client that leaves DynamoDB's answer unparsed:
each page's items as the JSON text DynamoDB sent, the records as the table holds them, page after
page; errors still mapped."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3
import pytest

from meterway.accounts.models import Reservation
from meterway.core.aws import RAW_BODY, deserialize, serialize
from meterway.core.errors import StorageError
from meterway.exports.logic.csv_format import LEDGER_FIELDS, REQUEST_COLUMNS, csv_text, request_row
from meterway.exports.logic.wire_rows import direct_rows
from meterway.ledger.dal.ledger_store import DynamoLedgerStore, LedgerQuery
from meterway.ledger.logic.record_usage import settle
from meterway.ledger.models import TokenUsage, UsageRecord
from tests.integration.conftest import LoopbackDynamo
from tests.ledger_factory import KEYS, ledger_item

DAY = datetime(2026, 11, 20, tzinfo=UTC)
ACCOUNT = KEYS[0].account_id
ON_BEDROCK = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
WHOLE_DAY = LedgerQuery(ACCOUNT, "2026-11-20T00:00:00.000Z", "2026-11-21T00:00:00.000Z")


def test_raw_pages_are_the_items_the_table_holds_in_dynamodbs_json(aws_env):
    items = [ledger_item(DAY + timedelta(seconds=7 * n), key=KEYS[n % 2]) for n in range(250)]
    client = boto3.client("dynamodb")
    for first in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": serialize(item)}} for item in items[first : first + 25]]
        client.batch_write_item(RequestItems={aws_env["LedgerTable"]: batch})
    ledger = DynamoLedgerStore(aws_env["LedgerTable"])

    pages = [json.loads(page) for page in ledger.wire_pages(WHOLE_DAY, page_size=100)]

    assert [len(page) for page in pages] == [100, 100, 50]
    read = [item for page in pages for item in page]
    assert all(set(attribute) <= {"S", "N", "BOOL", "M"} for item in read for attribute in item.values())
    assert [deserialize(item) for item in read] == sorted(items, key=lambda item: item["created_sk"])
    one_key = LedgerQuery(ACCOUNT, WHOLE_DAY.start, WHOLE_DAY.end, key_id=KEYS[1].key_id)
    assert sum(len(json.loads(page)) for page in ledger.wire_pages(one_key, page_size=100)) == 125


def test_a_raw_query_that_fails_is_a_storage_error(aws_env):
    with pytest.raises(StorageError):
        next(DynamoLedgerStore("no-such-table").wire_pages(WHOLE_DAY))


def test_the_next_page_is_asked_for_while_the_caller_works_on_this_one():
    # Given a ledger of two pages, whose second Query is noted when it is sent
    asked: list[dict | None] = []
    second_asked = threading.Event()

    class TwoPages:
        def query(self, Limit: int, **arguments):
            asked.append(arguments.get("ExclusiveStartKey"))
            number = len(asked)
            if number == 2:
                second_asked.set()
            more = {"LastEvaluatedKey": {"request_id": {"S": "r1"}}} if number == 1 else {}
            page = {"Count": 1, "Items": [{"request_id": {"S": f"r{number}"}}], **more}
            return {RAW_BODY: json.dumps(page).encode()}

    pages = DynamoLedgerStore("ledger", wire_client=TwoPages()).wire_pages(WHOLE_DAY)

    # When the caller holds the first page and has not asked for the next
    first = next(pages)

    # Then the second is on its way already, from where the first ended, and both come in order
    assert second_asked.wait(5)
    assert asked == [None, {"request_id": {"S": "r1"}}]
    assert [json.loads(page)[0]["request_id"]["S"] for page in [first, *pages]] == ["r1", "r2"]


def test_pages_end_where_the_records_end(aws_env):
    # Given 40 records, read 20 a page: the second page's last evaluated key leads to an empty page
    client = boto3.client("dynamodb")
    items = [serialize(ledger_item(DAY + timedelta(seconds=n))) for n in range(40)]
    for first in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[first : first + 25]]
        client.batch_write_item(RequestItems={aws_env["LedgerTable"]: batch})

    pages = list(DynamoLedgerStore(aws_env["LedgerTable"]).wire_pages(WHOLE_DAY, page_size=20))

    # Then the empty page is left out
    assert [len(json.loads(page)) for page in pages] == [20, 20]


def test_settled_records_read_lean_give_the_rows_boto3s_deserializer_gives(aws_env, dynamo: LoopbackDynamo):
    # Given requests settled as the proxy settles them: each record carries its counters, and one
    # request served by a fallback route has its failed attempt as a record of its own
    # Settled by the proxy's own client, as the proxy settles them
    ledger = DynamoLedgerStore(aws_env["LedgerTable"], dynamo=dynamo.client)
    reservation = Reservation(
        KEYS[0], spend_period="2026-11", minute="2026-11-20T10:00", minute_expires_at=1_800_000_000
    )
    for number in range(3):
        record = UsageRecord(
            f"gen-{number}",
            DAY + timedelta(minutes=number),
            KEYS[0],
            "anthropic/claude-sonnet-4-5",
            "anthropic",
            "messages",
            streamed=number % 2 == 0,
            tokens=TokenUsage(input_tokens=1000 + number, output_tokens=100, cache_read_tokens=10 * number),
            cost_usd=Decimal("0.0045") + Decimal(number) / 10**7,
            prices={"input_mtok": Decimal("3"), "output_mtok": Decimal("15"), "cache_read_mtok": Decimal("0.3")},
            latency_ms=900 + number,
            user="=cmd|' /C calc'!A0" if number == 1 else None,
        )
        attempts = []
        if number == 1:
            record.provider, record.attempts = "bedrock", 2
            record.route = ON_BEDROCK
            failed = UsageRecord(
                "gen-1.1", record.created_at, KEYS[0], record.model, "anthropic", "messages", False, status="error"
            )
            failed.error_code, failed.upstream_status, failed.attempt_of, failed.attempt = "overloaded", 529, "gen-1", 1
            attempts.append(failed)
        settled = settle(record, reservation, ledger, None, retention_days=30, attempts=attempts)
        assert dynamo.run(settled) == "written"

    # When the export reads them lean, and the request log's way (boto3's parser and deserializer)
    wire = [item for page in ledger.wire_pages(WHOLE_DAY) for item in json.loads(page)]
    parsed, _ = ledger.page(WHOLE_DAY, limit=100)
    parsed.reverse()  # the request log reads newest first

    # Then the records carry what the settle put in them, and each row is the same, byte for byte
    assert [item["request_id"]["S"] for item in wire] == ["gen-0", "gen-1", "gen-1.1", "gen-2"]
    assert all("counters" in item for item in parsed if "attempt_of" not in item)
    assert "counters" not in parsed[2] and parsed[2]["attempt_of"] == "gen-1"
    lean = csv_text(direct_rows(json.dumps(wire).encode()))
    # And read with only the fields a row needs (as the export reads them), the counters stay behind
    projected_pages = list(ledger.wire_pages(WHOLE_DAY, 1, LEDGER_FIELDS))
    assert not [item for page in projected_pages for item in json.loads(page) if "counters" in item]
    assert "".join(csv_text(direct_rows(page)) for page in projected_pages) == lean
    assert lean == csv_text(request_row(item) for item in parsed)
    rows = [dict(zip(REQUEST_COLUMNS, row, strict=True)) for row in direct_rows(json.dumps(wire).encode())]
    assert (rows[1]["route"], rows[1]["attempts"], rows[1]["provider"]) == (ON_BEDROCK, "2", "bedrock")
    assert (rows[2]["attempt_of"], rows[2]["attempt"], rows[2]["error_code"]) == ("gen-1", "1", "overloaded")
    assert rows[1]["user"].startswith("'=")
