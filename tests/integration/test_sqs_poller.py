"""devstack.workers.SqsPoller: the local stand-in for the SQS event source mappings.

Runs against a moto server, as the local stack does, with the queues built from template.yaml
(the export queue, with its redrive policy), and a fake handler that records what it got.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.aws_resources import create_resources, load_template
from devstack.workers import SqsPoller
from tests.integration.conftest import MOTO_REGION

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION = MOTO_REGION
_prefixes = itertools.count()


# The pollers make their own clients, as the local stack does: from the environment.
pytestmark = pytest.mark.usefixtures("moto_server_env")


@pytest.fixture
def sqs() -> Any:
    return boto3.session.Session().client("sqs")


@pytest.fixture(scope="module")
def queues_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """template.yaml's queues alone: the tables would take most of each test's setup."""
    template = load_template(TEMPLATE)
    template["Resources"] = {
        name: resource for name, resource in template["Resources"].items() if resource["Type"] == "AWS::SQS::Queue"
    }
    path = tmp_path_factory.mktemp("queues") / "template.json"
    path.write_text(json.dumps(template))
    return path


@pytest.fixture
def queues(queues_template: Path) -> dict[str, str]:
    """Fresh queues (the template's own definitions) per test, on the shared moto server."""
    prefix = f"sqspoller{next(_prefixes)}"
    return create_resources(queues_template, prefix=prefix, session=boto3.session.Session())


@dataclass
class FakeHandler:
    """Records every event; `respond(call_number, event)` decides the result (or raises)."""

    respond: Callable[[int, dict[str, Any]], dict[str, Any] | None] = lambda _call, _event: {"batchItemFailures": []}
    events: list[dict[str, Any]] = field(default_factory=list)
    function_names: list[str] = field(default_factory=list)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any] | None:
        self.events.append(json.loads(json.dumps(event)))  # a copy, and proof it is plain JSON
        self.function_names.append(context.function_name)
        return self.respond(len(self.events), event)

    def bodies(self) -> list[str]:
        return [record["body"] for event in self.events for record in event["Records"]]


@pytest.fixture
def start_poller(run_in_thread: Callable[[SqsPoller], SqsPoller]) -> Callable[..., SqsPoller]:
    def start(queue_url: str, handler: FakeHandler, **options: Any) -> SqsPoller:
        options.setdefault("retry_delay_s", 1)
        return run_in_thread(SqsPoller(queue_url, handler, "ExportFunction", **options))

    return start


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


def _messages_left(sqs: Any, queue_url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def _fail(*bodies: str, calls: int | None = None) -> Callable[[int, dict[str, Any]], dict[str, Any]]:
    """A response that reports the records with these bodies as failed (on the first `calls` calls)."""

    def respond(call: int, event: dict[str, Any]) -> dict[str, Any]:
        if calls is not None and call > calls:
            return {"batchItemFailures": []}
        failed = [record["messageId"] for record in event["Records"] if record["body"] in bodies]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    return respond


def test_export_jobs_arrive_one_per_event_in_the_shape_lambda_delivers(sqs, queues, start_poller):
    # Given three export jobs on the export queue, one with a message attribute
    queue_url = queues["ExportQueue"]
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody='{"job_id": "job-1"}',
        MessageAttributes={"account": {"DataType": "String", "StringValue": "acct-1"}},
    )
    for n in (2, 3):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f'{{"job_id": "job-{n}"}}')

    # When the poller runs with the export function's batch size
    handler = FakeHandler()
    start_poller(queue_url, handler, batch_size=1)
    _wait_for(lambda: len(handler.events) == 3 and _messages_left(sqs, queue_url) == 0)

    # Then each job came alone, shaped like Lambda's SQS event, and was deleted once handled
    assert [len(event["Records"]) for event in handler.events] == [1, 1, 1]
    assert sorted(handler.bodies()) == [f'{{"job_id": "job-{n}"}}' for n in (1, 2, 3)]
    first = next(event["Records"][0] for event in handler.events if "job-1" in event["Records"][0]["body"])
    assert list(first) == [
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    ]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert first["eventSource"] == "aws:sqs"
    assert first["eventSourceARN"] == queue_arn
    assert first["awsRegion"] == REGION
    assert first["attributes"]["ApproximateReceiveCount"] == "1"
    assert first["attributes"]["SentTimestamp"].isdigit()
    assert first["messageAttributes"] == {
        "account": {"stringValue": "acct-1", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    }
    assert handler.function_names == ["ExportFunction"] * 3


def test_a_failed_job_comes_back_soon_and_the_others_are_not_repeated(sqs, queues, start_poller):
    # Given two jobs, and a worker that fails the first one once
    queue_url = queues["ExportQueue"]
    for body in ("job-a", "job-b"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    handler = FakeHandler(respond=_fail("job-a", calls=1))

    # When the poller runs (the queue's own visibility timeout is 90 minutes)
    start_poller(queue_url, handler, batch_size=1)
    _wait_for(lambda: handler.bodies().count("job-a") == 2 and _messages_left(sqs, queue_url) == 0)

    # Then the failed job was received again within seconds, the other one only once
    assert sorted(handler.bodies()) == ["job-a", "job-a", "job-b"]
    retried = [event["Records"][0] for event in handler.events if event["Records"][0]["body"] == "job-a"]
    assert [record["attributes"]["ApproximateReceiveCount"] for record in retried] == ["1", "2"]


def test_a_raising_handler_is_retried_and_the_poller_keeps_going(sqs, queues, start_poller):
    queue_url = queues["ExportQueue"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="job-crash")

    def crash_once(call: int, _event: dict[str, Any]) -> dict[str, Any]:
        if call == 1:
            raise RuntimeError("ledger query throttled")
        return {"batchItemFailures": []}

    handler = FakeHandler(respond=crash_once)
    start_poller(queue_url, handler, batch_size=1)
    _wait_for(lambda: len(handler.events) == 2 and _messages_left(sqs, queue_url) == 0)

    # And a job sent afterwards is still handled
    sqs.send_message(QueueUrl=queue_url, MessageBody="job-next")
    _wait_for(lambda: "job-next" in handler.bodies() and _messages_left(sqs, queue_url) == 0)
    assert handler.bodies() == ["job-crash", "job-crash", "job-next"]


def test_a_job_that_keeps_failing_ends_in_the_dead_letter_queue(sqs, queues, start_poller):
    # Given a job the worker can never finish
    queue_url = queues["ExportQueue"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="job-poison")
    handler = FakeHandler(respond=_fail("job-poison"))

    # When the poller has tried it as often as the redrive policy allows
    start_poller(queue_url, handler, batch_size=1)
    dlq_url = queues["ExportDeadLetterQueue"]
    _wait_for(lambda: _messages_left(sqs, dlq_url) == 1, timeout_s=15)

    # Then it was attempted maxReceiveCount (3) times and is parked, not lost
    assert handler.bodies() == ["job-poison"] * 3
    (parked,) = sqs.receive_message(QueueUrl=dlq_url)["Messages"]
    assert parked["Body"] == "job-poison"
    assert _messages_left(sqs, queue_url) == 0


def test_a_batch_keeps_only_its_reported_failures(sqs, queues, start_poller):
    # Given several spilled records and a replay that fails one of them once
    queue_url = queues["LedgerSpillQueue"]
    bodies = [f"record-{n}" for n in range(5)]
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    handler = FakeHandler(respond=_fail("record-3", calls=1))

    start_poller(queue_url, handler, batch_size=10)
    _wait_for(lambda: handler.bodies().count("record-3") == 2 and _messages_left(sqs, queue_url) == 0)

    assert sorted(handler.bodies()) == sorted([*bodies, "record-3"])
    assert max(len(event["Records"]) for event in handler.events) <= 10


def test_a_malformed_failure_report_keeps_the_whole_batch(sqs, queues, start_poller):
    # Lambda treats an identifier that names no message of the batch as a failure of all of it.
    queue_url = queues["ExportQueue"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="job-x")

    def unknown_identifier_once(call: int, _event: dict[str, Any]) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": "not-a-message-id"}] if call == 1 else []}

    handler = FakeHandler(respond=unknown_identifier_once)
    start_poller(queue_url, handler, batch_size=1)
    _wait_for(lambda: len(handler.events) == 2 and _messages_left(sqs, queue_url) == 0)

    assert handler.bodies() == ["job-x", "job-x"]


def test_batch_size_must_be_one_sqs_can_return():
    with pytest.raises(ValueError, match="1 to 10"):
        SqsPoller("http://unused", FakeHandler(), "ExportFunction", batch_size=11)
