"""devstack.workers.DynamoStreamPoller: the local stand-in for the aggregator's stream mapping.

Runs against a moto server, as the local stack does, with the ledger table built from
template.yaml, and a fake handler (not the real aggregator) that records what it got.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.aws_resources import create_resources
from devstack.workers import DynamoStreamPoller, only_inserts
from tests.integration.conftest import MOTO_REGION

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION = MOTO_REGION
SAMPLE_EVENT = json.loads((ROOT / "events" / "ledger_stream_insert.json").read_text())
_prefixes = itertools.count()


# The pollers make their own clients, as the local stack does: from the environment.
pytestmark = pytest.mark.usefixtures("moto_server_env")


@pytest.fixture
def dynamodb() -> Any:
    return boto3.session.Session().client("dynamodb")


@pytest.fixture
def ledger_table() -> str:
    """A fresh ledger table (the template's own definition) per test, on the shared moto server."""
    created = create_resources(TEMPLATE, prefix=f"poller{next(_prefixes)}", session=boto3.session.Session())
    return created["LedgerTable"]


@dataclass
class FakeHandler:
    """Records every event; `respond(call_number, event)` decides the result (or raises)."""

    respond: Callable[[int, dict[str, Any]], dict[str, Any]] = lambda _call, _event: {"batchItemFailures": []}
    events: list[dict[str, Any]] = field(default_factory=list)
    function_names: list[str] = field(default_factory=list)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(json.loads(json.dumps(event)))  # a copy, and proof it is plain JSON
        self.function_names.append(context.function_name)
        return self.respond(len(self.events), event)

    def request_ids(self, call: int | None = None) -> list[str]:
        events = self.events if call is None else [self.events[call - 1]]
        return [record["dynamodb"]["Keys"]["request_id"]["S"] for event in events for record in event["Records"]]


@pytest.fixture
def start_poller(
    ledger_table: str, run_in_thread: Callable[[DynamoStreamPoller], DynamoStreamPoller]
) -> Callable[..., DynamoStreamPoller]:
    def start(handler: FakeHandler, **options: Any) -> DynamoStreamPoller:
        options.setdefault("event_filter", only_inserts)
        return run_in_thread(DynamoStreamPoller(ledger_table, handler, "AggregatorFunction", **options))

    return start


def _item(request_id: str) -> dict[str, Any]:
    item = dict(SAMPLE_EVENT["Records"][0]["dynamodb"]["NewImage"])
    item["request_id"] = {"S": request_id}
    item["created_sk"] = {"S": f"{item['created_at']['S']}#{request_id}"}
    return item


def _put(dynamodb: Any, table: str, *request_ids: str) -> None:
    for request_id in request_ids:
        dynamodb.put_item(TableName=table, Item=_item(request_id))


def _ids(count: int, prefix: str = "gen-") -> list[str]:
    return [f"{prefix}{n:04d}" for n in range(1, count + 1)]


def test_events_have_the_shape_lambda_delivers(dynamodb, ledger_table, start_poller):
    # Given a poller on the ledger's stream
    handler = FakeHandler()
    poller = start_poller(handler)

    # When the proxy writes a ledger record
    item = _item("gen-shape")
    _put(dynamodb, ledger_table, "gen-shape")
    poller.drain()

    # Then the handler gets one event shaped like the sample Lambda event, for its own function
    ((record,),) = [event["Records"] for event in handler.events]
    (sample,) = SAMPLE_EVENT["Records"]
    assert list(record) == list(sample)
    assert list(record["dynamodb"]) == list(sample["dynamodb"])
    assert record["eventName"] == "INSERT"
    assert record["eventVersion"] == "1.1"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["awsRegion"] == REGION
    stream_arn = dynamodb.describe_table(TableName=ledger_table)["Table"]["LatestStreamArn"]
    assert record["eventSourceARN"] == stream_arn
    change = record["dynamodb"]
    assert isinstance(change["ApproximateCreationDateTime"], int)
    assert abs(change["ApproximateCreationDateTime"] - time.time()) < 60
    assert change["Keys"] == {"request_id": {"S": "gen-shape"}}
    assert change["NewImage"] == item
    assert change["SequenceNumber"].isdigit()
    assert isinstance(change["SizeBytes"], int)
    assert change["StreamViewType"] == "NEW_IMAGE"
    assert handler.function_names == ["AggregatorFunction"]


def test_only_inserts_reach_the_handler(dynamodb, ledger_table, start_poller):
    # Given a record the handler has already seen
    handler = FakeHandler()
    poller = start_poller(handler)
    _put(dynamodb, ledger_table, "gen-a")
    poller.drain()

    # When it is modified, rewritten and deleted (as TTL would)
    key = {"request_id": {"S": "gen-a"}}
    dynamodb.update_item(
        TableName=ledger_table,
        Key=key,
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "error"}},
    )
    _put(dynamodb, ledger_table, "gen-a")
    dynamodb.delete_item(TableName=ledger_table, Key=key)
    poller.drain()

    # Then none of that is delivered, and the next insert still is
    assert handler.request_ids() == ["gen-a"]
    _put(dynamodb, ledger_table, "gen-b")
    poller.drain()
    assert handler.request_ids() == ["gen-a", "gen-b"]
    assert {record["eventName"] for event in handler.events for record in event["Records"]} == {"INSERT"}


def test_every_record_is_delivered_once_in_order(dynamodb, ledger_table, start_poller):
    # Given records written before and while the poller runs
    expected = _ids(130)
    _put(dynamodb, ledger_table, *expected[:70])
    handler = FakeHandler()
    poller = start_poller(handler, batch_size=50)
    _put(dynamodb, ledger_table, *expected[70:])

    # When the stream is drained
    poller.drain()

    # Then each record arrived exactly once, in write order, in batches no larger than asked
    assert handler.request_ids() == expected
    assert max(len(event["Records"]) for event in handler.events) == 50


def test_a_reported_failure_is_delivered_again_from_the_lowest_failed_record(dynamodb, ledger_table, start_poller):
    # Given five records in the stream, and a handler that fails the 4th and 3rd records once
    ids = _ids(5)
    _put(dynamodb, ledger_table, *ids)

    def fail_third_and_fourth_once(call: int, event: dict[str, Any]) -> dict[str, Any]:
        if call > 1:
            return {"batchItemFailures": []}
        failed = [event["Records"][3], event["Records"][2]]
        return {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in failed]}

    handler = FakeHandler(respond=fail_third_and_fourth_once)
    poller = start_poller(handler)

    # When the stream is drained
    poller.drain()

    # Then the retry starts at the 3rd record: the first two are not sent again
    assert handler.request_ids(1) == ids
    assert handler.request_ids(2) == ids[2:]
    assert len(handler.events) == 2
    assert handler.events[1]["Records"] == handler.events[0]["Records"][2:]


def test_a_raising_handler_gets_the_whole_batch_again(dynamodb, ledger_table, start_poller):
    # Given three records, and a handler that crashes on its first call
    ids = _ids(3)
    _put(dynamodb, ledger_table, *ids)

    def crash_once(call: int, _event: dict[str, Any]) -> dict[str, Any]:
        if call == 1:
            raise RuntimeError("rollups table throttled")
        return {"batchItemFailures": []}

    handler = FakeHandler(respond=crash_once)
    poller = start_poller(handler)

    # When the stream is drained
    poller.drain()

    # Then the same batch, records and all, was delivered a second time, and nothing after that
    assert len(handler.events) == 2
    assert handler.events[1] == handler.events[0]
    assert handler.request_ids(1) == ids


def test_a_malformed_failure_report_fails_the_whole_batch(dynamodb, ledger_table, start_poller):
    # Lambda treats an identifier that names no record of the batch as a failure of all of it.
    ids = _ids(2)
    _put(dynamodb, ledger_table, *ids)

    def unknown_identifier_once(call: int, _event: dict[str, Any]) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": "not-a-sequence-number"}] if call == 1 else []}

    handler = FakeHandler(respond=unknown_identifier_once)
    poller = start_poller(handler)
    poller.drain()

    assert [handler.request_ids(call) for call in (1, 2)] == [ids, ids]


def test_drain_gives_up_while_a_record_keeps_failing(dynamodb, ledger_table, start_poller):
    # Given a record the handler can never process
    def always_fail(_call: int, event: dict[str, Any]) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}]}

    handler = FakeHandler(respond=always_fail)
    poller = start_poller(handler, retry_backoff_s=0.05)
    _put(dynamodb, ledger_table, "gen-poison")

    # Then the record is retried, never skipped (a loaded machine may take seconds to get there)
    deadline = time.monotonic() + 10
    while len(handler.events) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(handler.events) >= 2
    assert set(handler.request_ids()) == {"gen-poison"}
    # And drain says so instead of returning
    with pytest.raises(TimeoutError, match="failure at sequence number"):
        poller.drain(timeout_s=1.0)


def test_drain_returns_at_once_when_nothing_was_written(ledger_table, start_poller):
    handler = FakeHandler()
    poller = start_poller(handler)

    started = time.monotonic()
    poller.drain()

    assert time.monotonic() - started < 2
    assert handler.events == []


def test_moto_server_applies_one_dynamodb_request_at_a_time(dynamodb, ledger_table, monkeypatch):
    # Unlocked, concurrent writes lost counter updates and shared stream sequence numbers under
    # the local stack's load; devstack.moto_patches serialises moto's DynamoDB requests. A slow
    # write makes any overlap visible: without the patch several run at once.
    from concurrent.futures import ThreadPoolExecutor

    from moto.dynamodb.models import DynamoDBBackend

    from devstack import moto_patches

    moto_patches.apply()
    original, guard = DynamoDBBackend.put_item, threading.Lock()
    running, peak = [0], [0]

    def slow_put(self: Any, *args: Any, **kwargs: Any) -> Any:
        with guard:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.005)
        try:
            return original(self, *args, **kwargs)
        finally:
            with guard:
                running[0] -= 1

    monkeypatch.setattr(DynamoDBBackend, "put_item", slow_put)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: _put(dynamodb, ledger_table, f"gen-{n}"), range(80)))
    assert peak[0] == 1
