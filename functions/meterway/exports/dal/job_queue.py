"""The ExportQueue: one JSON message per export job, for ExportFunction; and one per slice of a
fanned-out request export."""

from __future__ import annotations

import json
from typing import Any, Protocol

from meterway.core.aws import AwsResource
from meterway.core.dynamo import storage_errors
from meterway.core.errors import StorageError

UNAVAILABLE = "The job queue is unavailable; try again."
BATCH = 10  # SQS's most messages in one SendMessageBatch


class JobQueue(Protocol):
    def send(self, message: dict[str, Any]) -> None: ...

    def send_batch(self, messages: list[dict[str, Any]]) -> None:
        """Send every message, or raise ``StorageError`` (some may have been sent)."""


class SqsJobQueue(AwsResource):
    service = "sqs"

    def __init__(self, queue_url: str, client: Any | None = None):
        super().__init__(client)
        self._queue_url = queue_url

    def send(self, message: dict[str, Any]) -> None:
        with storage_errors(UNAVAILABLE):
            self.client.send_message(QueueUrl=self._queue_url, MessageBody=json.dumps(message))

    def send_batch(self, messages: list[dict[str, Any]]) -> None:
        for first in range(0, len(messages), BATCH):
            entries = [
                {"Id": str(number), "MessageBody": json.dumps(message)}
                for number, message in enumerate(messages[first : first + BATCH])
            ]
            with storage_errors(UNAVAILABLE):
                sent = self.client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            if sent.get("Failed"):
                raise StorageError(UNAVAILABLE)
