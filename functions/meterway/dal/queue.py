"""An SQS queue that takes JSON messages (the export jobs' queue)."""

from __future__ import annotations

import json
from typing import Any

from meterway.dal.aws import AwsResource
from meterway.errors import StorageError


class SqsQueue(AwsResource):
    service = "sqs"

    def __init__(self, queue_url: str, client: Any | None = None):
        super().__init__(client)
        self._queue_url = queue_url

    def send(self, message: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.send_message(QueueUrl=self._queue_url, MessageBody=json.dumps(message))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The job queue is unavailable; try again.") from exc
