"""The ledger's pages for exports, read through a client that leaves DynamoDB's answer unparsed:
the records as the table holds them, in DynamoDB's JSON, page after page; errors still mapped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from meterway.core.aws import deserialize, serialize
from meterway.core.errors import StorageError
from meterway.ledger.dal.ledger_store import DynamoLedgerStore, LedgerQuery
from tests.ledger_factory import KEYS, ledger_item

DAY = datetime(2026, 11, 20, tzinfo=UTC)
ACCOUNT = KEYS[0].account_id
WHOLE_DAY = LedgerQuery(ACCOUNT, "2026-11-20T00:00:00.000Z", "2026-11-21T00:00:00.000Z")


def test_raw_pages_are_the_items_the_table_holds_in_dynamodbs_json(aws_env):
    items = [ledger_item(DAY + timedelta(seconds=7 * n), key=KEYS[n % 2]) for n in range(250)]
    client = boto3.client("dynamodb")
    for first in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": serialize(item)}} for item in items[first : first + 25]]
        client.batch_write_item(RequestItems={aws_env["LedgerTable"]: batch})
    ledger = DynamoLedgerStore(aws_env["LedgerTable"])

    pages = [list(page) for page in ledger.wire_pages(WHOLE_DAY, page_size=100)]

    assert [len(page) for page in pages] == [100, 100, 50]
    read = [item for page in pages for item in page]
    assert all(set(attribute) <= {"S", "N", "BOOL", "M"} for item in read for attribute in item.values())
    assert [deserialize(item) for item in read] == sorted(items, key=lambda item: item["created_sk"])
    one_key = LedgerQuery(ACCOUNT, WHOLE_DAY.start, WHOLE_DAY.end, key_id=KEYS[1].key_id)
    assert sum(len(page) for page in ledger.wire_pages(one_key, page_size=100)) == 125


def test_a_raw_query_that_fails_is_a_storage_error(aws_env):
    with pytest.raises(StorageError):
        next(DynamoLedgerStore("no-such-table").wire_pages(WHOLE_DAY))


def test_a_page_is_let_go_when_the_next_is_asked_for(aws_env):
    # Only one page of records is held, whatever the reader keeps a reference to
    client = boto3.client("dynamodb")
    items = [ledger_item(DAY + timedelta(seconds=n)) for n in range(30)]
    client.batch_write_item(
        RequestItems={aws_env["LedgerTable"]: [{"PutRequest": {"Item": serialize(item)}} for item in items[:25]]}
    )
    client.batch_write_item(
        RequestItems={aws_env["LedgerTable"]: [{"PutRequest": {"Item": serialize(item)}} for item in items[25:]]}
    )
    pages = DynamoLedgerStore(aws_env["LedgerTable"]).wire_pages(WHOLE_DAY, page_size=20)

    first = next(pages)
    assert len(first) == 20
    assert len(next(pages)) == 10 and first == []
