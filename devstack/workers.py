"""Stand-ins for Lambda event source mappings: poll a source, call the handler with the same event
shape AWS delivers, and honour partial batch failures."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from devstack.gateway import LocalLambdaContext
from meterway.observability import logger


class SqsPoller:
    def __init__(self, queue_url: str, handler: Callable[[dict[str, Any], Any], dict[str, Any]], function_name: str):
        self._queue_url = queue_url
        self._handler = handler
        self._function_name = function_name
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        import boto3

        client = boto3.client("sqs")
        queue_arn = client.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        while not self._stopped.is_set():
            messages = client.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            if not messages:
                continue
            event = {"Records": [_sqs_record(message, queue_arn) for message in messages]}
            result = self._handler(event, LocalLambdaContext(self._function_name))
            failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
            for message in messages:
                if message["MessageId"] not in failed:
                    client.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
            if failed:
                logger.warning("replay batch had failures", extra={"failed": len(failed)})


def _sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }
