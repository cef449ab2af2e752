"""The ExportQueue: one JSON message per export job, for ExportFunction."""

from __future__ import annotations

import json
from typing import Any, Protocol

from meterway.core.aws import AwsResource
from meterway.core.dynamo import storage_errors


class JobQueue(Protocol):
    def send(self, message: dict[str, Any]) -> None: ...


class SqsJobQueue(AwsResource):
    service = "sqs"

    def __init__(self, queue_url: str, client: Any | None = None):
        super().__init__(client)
        self._queue_url = queue_url

    def send(self, message: dict[str, Any]) -> None:
        with storage_errors("The job queue is unavailable; try again."):
            self.client.send_message(QueueUrl=self._queue_url, MessageBody=json.dumps(message))
