"""A ledger outage loses no usage record: it is spilled to SQS and replayed exactly once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import boto3

from devstack.gateway import LocalLambdaContext
from meterway.accounts.models import ApiKey, CounterDelta
from meterway.ledger.dal.ledger_store import DynamoLedgerStore
from meterway.ledger.dal.spill_queue import SqsSpillQueue
from meterway.ledger.handlers import ledger_replay
from meterway.ledger.logic.record_usage import new_request_id, save_settlement, with_counters
from meterway.ledger.models import TokenUsage, UsageRecord
from tests.integration.conftest import count_ledger


def a_record_item() -> dict:
    return UsageRecord(
        request_id=new_request_id(),
        created_at=datetime.now(UTC),
        key=ApiKey(key_id="key_1", account_id="acct", name="ci"),
        model="anthropic/claude-haiku-4-5",
        provider="anthropic",
        endpoint="chat.completions",
        streamed=False,
        tokens=TokenUsage(input_tokens=10, output_tokens=20, cache_creation_1h_tokens=2048),
        cost_usd=Decimal("0.004206"),
        prices={"input_mtok": Decimal(1), "cache_write_1h_mtok": Decimal(2)},
    ).to_item()


def sqs_event(messages: list[dict]) -> dict:
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:spill",
                "awsRegion": "us-east-1",
            }
            for message in messages
        ]
    }


def test_an_unwritable_record_is_spilled_then_replayed_once_even_when_delivered_twice(aws_env, dynamo):
    # Given a ledger that cannot be written (its table is missing) and the real spill queue
    queue_url = aws_env["LedgerSpillQueue"]
    broken_ledger = DynamoLedgerStore("no-such-table", dynamo=dynamo.client)
    item = a_record_item()
    counters = [CounterDelta("ACCOUNT#acct", "BALANCE", {"spent_usd": item["cost_usd"]})]

    # When the proxy settles the record, carrying its counters
    outcome = dynamo.run(save_settlement(with_counters(item, counters), broken_ledger, SqsSpillQueue(queue_url)))

    # Then it is parked on the queue, and the replay function writes it to the real ledger
    assert outcome == "spilled"
    assert dynamo.operations == ["PutItem"]  # the missing table is no cause to try again
    messages = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    event = sqs_event(messages)
    first = ledger_replay.handler(event, LocalLambdaContext("LedgerReplayFunction"))
    again = ledger_replay.handler(event, LocalLambdaContext("LedgerReplayFunction"))
    assert first == again == {"batchItemFailures": []}

    ledger = DynamoLedgerStore(aws_env["LedgerTable"])
    stored = ledger.get(item["request_id"])
    assert stored is not None
    assert stored["cost_usd"] == Decimal("0.004206")
    assert stored["cache_creation_1h_tokens"] == 2048
    assert stored["prices"]["cache_write_1h_mtok"] == 2
    items = boto3.client("dynamodb").scan(TableName=aws_env["LedgerTable"])["Items"]
    assert len(items) == 1
    # And its counters are added once the aggregator counts it from the ledger's stream
    assert stored["counters"] == [counter.to_item() for counter in counters]
    count_ledger(aws_env)
    count_ledger(aws_env)  # a stream batch delivered twice
    balance = boto3.client("dynamodb").get_item(
        TableName=aws_env["KeysTable"], Key={"pk": {"S": "ACCOUNT#acct"}, "sk": {"S": "BALANCE"}}
    )["Item"]
    assert Decimal(balance["spent_usd"]["N"]) == Decimal("0.004206")  # counted once, though replayed twice


def test_a_record_that_cannot_be_replayed_is_reported_alone_and_the_rest_are_written(aws_env):
    # Given a batch with one good spilled record and one unreadable message
    queue_url = aws_env["LedgerSpillQueue"]
    good = a_record_item()
    SqsSpillQueue(queue_url).send(good)
    boto3.client("sqs").send_message(QueueUrl=queue_url, MessageBody="{not json")
    messages = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 2
    bad_id = next(m["MessageId"] for m in messages if m["Body"] == "{not json")

    # When the replay function takes the batch
    result = ledger_replay.handler(sqs_event(messages), LocalLambdaContext("LedgerReplayFunction"))

    # Then only the bad message goes back to the queue (and on to the dead-letter queue)
    assert result == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    assert DynamoLedgerStore(aws_env["LedgerTable"]).get(good["request_id"]) is not None
