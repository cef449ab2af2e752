"""Stand-ins for Lambda event source mappings: poll a source, call the handler with the same event
shape AWS delivers, and honour partial batch failures."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from devstack.lambda_context import LocalLambdaContext
from meterway.core.observability import logger


class SqsPoller:
    """Stand-in for a Lambda event source mapping on an SQS queue.

    Receives up to `batch_size` messages, hands them to `handler` shaped as Lambda delivers them,
    and deletes the ones that succeeded, as a mapping with ReportBatchItemFailures does: a
    message the handler reports as failed stays on the queue, and so does the whole batch when
    the handler raises or names a message that is not in it. The queue's redrive policy still
    counts every receive, so a message that keeps failing ends in its dead-letter queue after
    maxReceiveCount attempts, as in AWS.

    One difference, on purpose: a failed message comes back after `retry_delay_s` instead of the
    queue's VisibilityTimeout. That timeout is six function timeouts (90 minutes for the export
    queue) so that a job still running is never picked up twice; locally it would only make a
    failed export wait that long for its retry. Messages being handled keep the queue's timeout.
    """

    def __init__(
        self,
        queue_url: str,
        handler: Callable[[dict[str, Any], Any], Mapping[str, Any] | None],
        function_name: str,
        *,
        batch_size: int = 10,
        retry_delay_s: int = 2,
        wait_time_s: int = 1,
    ) -> None:
        if not 1 <= batch_size <= 10:
            raise ValueError("an SQS receive returns 1 to 10 messages")
        self._queue_url = queue_url
        self._handler = handler
        self._function_name = function_name
        self._batch_size = batch_size
        self._retry_delay_s = retry_delay_s
        # Long polling, kept short so that stop() takes effect within about this long.
        self._wait_time_s = wait_time_s
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        """Poll until `stop()`; meant to be a thread's target."""
        import boto3

        # A session of its own: boto3's default session is not safe to share across threads.
        client = boto3.session.Session().client("sqs")
        queue_arn = client.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        while not self._stopped.is_set():
            try:
                self._poll(client, queue_arn)
            except (BotoCoreError, ClientError) as exc:
                if self._stopped.is_set():
                    return
                # The local endpoint may be briefly unreachable; unacknowledged messages come back.
                logger.warning("queue poll failed", extra={"function": self._function_name, "error": str(exc)})
                self._stopped.wait(self._wait_time_s)

    def _poll(self, client: Any, queue_arn: str) -> None:
        messages: list[dict[str, Any]] = client.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=self._wait_time_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return
        region = client.meta.region_name
        event = {"Records": [_sqs_record(message, queue_arn, region) for message in messages]}
        failed = self._invoke(event)
        for message in messages:
            if message["MessageId"] in failed:
                client.change_message_visibility(
                    QueueUrl=self._queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self._retry_delay_s,
                )
            else:
                client.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _invoke(self, event: dict[str, Any]) -> set[str]:
        """Call the handler; returns the ids of the messages to deliver again."""
        delivered = [record["messageId"] for record in event["Records"]]
        context = {"function": self._function_name, "messages": len(delivered)}
        try:
            result = self._handler(event, LocalLambdaContext(self._function_name))
        except Exception:  # noqa: BLE001 (any function error, as Lambda sees it)
            # Lambda leaves the whole batch on the queue when the function errors; so do we.
            logger.exception("queue handler raised, the batch will be retried", extra=context)
            return set(delivered)
        failed = _failed_message_ids(delivered, result)
        if failed:
            logger.warning("queue batch had failures", extra=context | {"failed": len(failed)})
        return failed


def _failed_message_ids(delivered: list[str], result: Any) -> set[str]:
    """The messages Lambda keeps after a ReportBatchItemFailures response: those it names, or the
    whole batch when the response is malformed or names a message that was not delivered."""
    if result is None:
        return set()
    if not isinstance(result, Mapping):
        return set(delivered)
    failures = result.get("batchItemFailures")
    if not failures:
        return set()
    if not isinstance(failures, list):
        return set(delivered)
    identifiers = [failure.get("itemIdentifier") if isinstance(failure, Mapping) else None for failure in failures]
    if not all(identifier in delivered for identifier in identifiers):
        return set(delivered)
    return {str(identifier) for identifier in identifiers}


def _sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A ReceiveMessage message (as boto3 parses it) in the shape Lambda's SQS event carries."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    # Lambda spells the fields in camelCase and sends binary values base64-encoded.
    attribute: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    return attribute


def only_inserts(record: dict[str, Any]) -> bool:
    """The AggregatorFunction's FilterCriteria (`{"eventName": ["INSERT"]}`) as an event filter."""
    return record.get("eventName") == "INSERT"


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    iterator: str | None = None
    # Last sequence number handled for good (delivered, or filtered out).
    checkpoint: str | None = None
    # First sequence number to deliver again after a failed batch, and when.
    resume_at: str | None = None
    retry_at: float = 0.0
    failures: int = 0
    finished: bool = False


class DynamoStreamPoller:
    """Stand-in for a Lambda event source mapping on a DynamoDB table's stream.

    Reads every shard from TRIM_HORIZON (a child shard after its parent, as Lambda does), drops
    what `event_filter` rejects (the mapping's FilterCriteria), and hands the rest to `handler`
    in batches of at most `batch_size`, shaped exactly as Lambda delivers them. Failures are
    retried like a mapping with ReportBatchItemFailures: from the lowest reported sequence
    number, or from the start of the batch when the handler raises; records before that point
    are not sent again. Unlike the deployed mapping it never gives up on a record: a failing
    record holds its shard back and is retried with a capped backoff, so a bug shows up locally
    instead of silently leaving rollups short.
    """

    def __init__(
        self,
        table_name: str,
        handler: Callable[[dict[str, Any], Any], Mapping[str, Any] | None],
        function_name: str,
        *,
        batch_size: int = 100,
        event_filter: Callable[[dict[str, Any]], bool] | None = None,
        poll_interval_s: float = 0.25,
        retry_backoff_s: float = 0.2,
        redeliver: bool = False,
    ) -> None:
        self._table_name = table_name
        # Every batch handled twice: what Lambda does when an invocation did its work but timed
        # out, or its answer was lost. Stream delivery is at least once; the handler must hold.
        self._redeliver = redeliver
        self._handler = handler
        self._function_name = function_name
        self._batch_size = batch_size
        self._event_filter = event_filter
        # Lambda polls a stream shard four times a second.
        self._poll_interval_s = poll_interval_s
        self._retry_backoff_s = retry_backoff_s
        self._shards: dict[str, _Shard] = {}
        self._streams: Any = None
        self._stream_arn = ""
        self._region = ""
        self._stopped = threading.Event()
        self._wake = threading.Event()
        # Guards the round counters that drain() waits on.
        self._progress = threading.Condition()
        self._rounds_started = 0
        self._rounds_done = 0
        self._last_round_idle = False
        self._last_error = ""

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def run(self) -> None:
        """Poll until `stop()`; meant to be a thread's target."""
        import boto3

        # A session of its own: boto3's default session is not safe to share across threads.
        session = boto3.session.Session()
        table = session.client("dynamodb").describe_table(TableName=self._table_name)["Table"]
        if "LatestStreamArn" not in table:
            raise ValueError(f"table {self._table_name} has no stream")
        self._stream_arn = table["LatestStreamArn"]
        self._streams = session.client("dynamodbstreams")
        self._region = self._streams.meta.region_name
        while not self._stopped.is_set():
            with self._progress:
                self._rounds_started += 1
            fetched, idle = self._poll_round_safely()
            with self._progress:
                self._rounds_done += 1
                self._last_round_idle = idle
                self._progress.notify_all()
            if fetched == 0:
                self._wake.wait(self._poll_interval_s)
                self._wake.clear()

    def drain(self, timeout_s: float = 10.0) -> None:
        """Block until every record written before the call has been handled successfully.

        Done once a whole polling round that started after this call found nothing new on any
        shard and no batch waiting to be retried: moto appends a record to the stream before
        the write returns, so such a round has seen (and passed on) everything written before.
        Raises TimeoutError if that does not happen within `timeout_s` (a failing handler, or a
        poller that is not running).
        """
        deadline = time.monotonic() + timeout_s
        with self._progress:
            target = self._rounds_started + 1
            # Cut the poller's sleep short so the target round starts now.
            self._wake.set()
            while not (self._rounds_done >= target and self._last_round_idle):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    detail = self._last_error or "is the poller running?"
                    raise TimeoutError(f"{self._function_name}: stream not drained after {timeout_s}s ({detail})")
                self._progress.wait(remaining)

    def _poll_round_safely(self) -> tuple[int, bool]:
        try:
            return self._poll_round()
        except (BotoCoreError, ClientError) as exc:
            if not self._stopped.is_set():
                # The local endpoint may be briefly unreachable; each shard keeps its position for the next round.
                logger.warning("stream poll failed", extra={"function": self._function_name, "error": str(exc)})
            return 0, False

    def _poll_round(self) -> tuple[int, bool]:
        """One get_records per ready shard; returns (records read, whether everything is handled)."""
        self._refresh_shards()
        fetched, settled = 0, True
        for shard in list(self._shards.values()):
            if shard.finished:
                continue
            if not self._parent_done(shard) or shard.retry_at > time.monotonic():
                settled = False
                continue
            fetched += self._poll_shard(shard)
            settled = settled and shard.resume_at is None
        return fetched, settled and fetched == 0

    def _refresh_shards(self) -> None:
        """Pick up shards that appeared since the last round (DynamoDB splits and rolls them over)."""
        kwargs: dict[str, Any] = {"StreamArn": self._stream_arn}
        while True:
            description = self._streams.describe_stream(**kwargs)["StreamDescription"]
            for shard in description["Shards"]:
                if shard["ShardId"] not in self._shards:
                    self._shards[shard["ShardId"]] = _Shard(shard["ShardId"], shard.get("ParentShardId"))
            if not description.get("LastEvaluatedShardId"):
                return
            kwargs["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]

    def _parent_done(self, shard: _Shard) -> bool:
        # Records of one item stay in order only if a child is read after its parent is exhausted.
        parent = self._shards.get(shard.parent_id) if shard.parent_id else None
        return parent is None or parent.finished

    def _poll_shard(self, shard: _Shard) -> int:
        response = self._get_records(shard)
        records: list[dict[str, Any]] = response["Records"]
        next_iterator = response.get("NextShardIterator")
        if records and not self._deliver(shard, records):
            # Read again from shard.resume_at once the backoff is over.
            return len(records)
        shard.iterator = next_iterator
        # A closed shard has no next iterator once its last record is read.
        shard.finished = next_iterator is None
        return len(records)

    def _get_records(self, shard: _Shard) -> dict[str, Any]:
        try:
            return dict(self._streams.get_records(ShardIterator=self._iterator(shard), Limit=self._batch_size))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExpiredIteratorException":
                raise
        # Iterators expire after 15 minutes; a fresh one from the checkpoint reads the same records.
        shard.iterator = None
        return dict(self._streams.get_records(ShardIterator=self._iterator(shard), Limit=self._batch_size))

    def _iterator(self, shard: _Shard) -> str:
        if shard.iterator:
            return shard.iterator
        kwargs: dict[str, Any] = {"StreamArn": self._stream_arn, "ShardId": shard.shard_id}
        if shard.resume_at:
            kwargs |= {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": shard.resume_at}
        elif shard.checkpoint:
            kwargs |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": shard.checkpoint}
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        iterator: str = self._streams.get_shard_iterator(**kwargs)["ShardIterator"]
        return iterator

    def _deliver(self, shard: _Shard, records: list[dict[str, Any]]) -> bool:
        """Hand the records that pass the filter to the handler; False if some must be sent again."""
        events = [_lambda_record(record, self._stream_arn, self._region) for record in records]
        batch = [event for event in events if self._event_filter is None or self._event_filter(event)]
        resume_at = self._invoke(shard, batch) if batch else None
        if resume_at is None:
            shard.checkpoint = records[-1]["dynamodb"]["SequenceNumber"]
            shard.resume_at = None
            shard.failures = 0
            self._last_error = ""
            return True
        shard.resume_at = resume_at
        shard.iterator = None
        shard.failures += 1
        shard.retry_at = time.monotonic() + min(self._retry_backoff_s * 2 ** (shard.failures - 1), 5.0)
        return False

    def _invoke(self, shard: _Shard, batch: list[dict[str, Any]]) -> str | None:
        """Call the handler; returns the sequence number to deliver again from, or None if all went well."""
        context = {"function": self._function_name, "shard": shard.shard_id, "attempt": shard.failures + 1}
        try:
            result = self._handler({"Records": batch}, LocalLambdaContext(self._function_name))
            if self._redeliver and _resume_point(batch, result) is None:
                result = self._handler({"Records": batch}, LocalLambdaContext(self._function_name))
        except Exception as exc:  # noqa: BLE001 (any function error, as Lambda sees it)
            # Lambda retries the whole batch when the function errors; so do we.
            self._last_error = f"handler raised {exc!r}"
            logger.exception("stream handler raised, retrying the batch", extra=context)
            return str(batch[0]["dynamodb"]["SequenceNumber"])
        resume_at = _resume_point(batch, result)
        if resume_at is not None:
            self._last_error = f"handler reported a failure at sequence number {resume_at}"
            logger.warning("stream batch partly failed, retrying", extra=context | {"resume_at": resume_at})
        return resume_at


def _resume_point(batch: list[dict[str, Any]], result: Any) -> str | None:
    """Where Lambda resumes after a ReportBatchItemFailures response: the lowest failed sequence
    number; the batch's first record if the response is malformed or names an unknown record."""
    first: str = batch[0]["dynamodb"]["SequenceNumber"]
    if result is None:
        return None
    if not isinstance(result, Mapping):
        return first
    failures = result.get("batchItemFailures")
    if failures is None or failures == []:
        return None
    if not isinstance(failures, list):
        return first
    delivered = {record["dynamodb"]["SequenceNumber"] for record in batch}
    identifiers = [failure.get("itemIdentifier") if isinstance(failure, dict) else None for failure in failures]
    failed = [str(identifier) for identifier in identifiers if identifier in delivered]
    if len(failed) < len(identifiers):
        return first
    return min(failed, key=int)


def _lambda_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A GetRecords record (as boto3 parses it) in the shape Lambda's event source mapping delivers."""
    source = record["dynamodb"]
    dynamodb: dict[str, Any] = {"ApproximateCreationDateTime": _epoch_seconds(source["ApproximateCreationDateTime"])}
    for image in ("Keys", "NewImage", "OldImage"):
        if image in source:
            dynamodb[image] = {name: _wire_value(value) for name, value in source[image].items()}
    dynamodb |= {key: source[key] for key in ("SequenceNumber", "SizeBytes", "StreamViewType")}
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


def _epoch_seconds(value: datetime | float) -> int:
    # boto3 parses the timestamp into a datetime; Lambda's event carries whole epoch seconds.
    return int(value.timestamp()) if isinstance(value, datetime) else int(value)


def _wire_value(value: dict[str, Any]) -> dict[str, Any]:
    """An attribute value as it appears in JSON: boto3 decodes binary to bytes, Lambda sends base64."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode("ascii")}
    if kind == "BS":
        return {"BS": [base64.b64encode(item).decode("ascii") for item in inner]}
    if kind == "M":
        return {"M": {name: _wire_value(item) for name, item in inner.items()}}
    if kind == "L":
        return {"L": [_wire_value(item) for item in inner]}
    return value
