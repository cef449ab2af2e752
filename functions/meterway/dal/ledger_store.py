"""The ledger: one item per request, written exactly once with a conditional put on its id."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Protocol

from meterway.dal.aws import AwsResource
from meterway.errors import StorageError


class LedgerStore(Protocol):
    def put(self, item: dict[str, Any]) -> bool:
        """Write a record; False when a record with that request id is already there."""

    def get(self, request_id: str) -> dict[str, Any] | None:
        """One record by request id."""


class SpillQueue(Protocol):
    def send(self, item: dict[str, Any]) -> None:
        """Park a record the ledger could not take, for the replay function to write later."""


class DynamoLedgerStore(AwsResource):
    """The LedgerTable, keyed by ``request_id``."""

    def __init__(self, table_name: str, client: Any | None = None):
        super().__init__(client)
        self._table = table_name

    def put(self, item: dict[str, Any]) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        from meterway.dal.aws import serialize

        try:
            self.client.put_item(
                TableName=self._table,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(request_id)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise StorageError("The ledger did not accept the usage record.") from exc
        except BotoCoreError as exc:
            raise StorageError("The ledger is unreachable.") from exc
        return True

    def get(self, request_id: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        from meterway.dal.aws import deserialize

        try:
            response = self.client.get_item(
                TableName=self._table, Key={"request_id": {"S": request_id}}, ConsistentRead=True
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The ledger is unavailable; try again.") from exc
        item = response.get("Item")
        return deserialize(item) if item else None


def encode_record(item: dict[str, Any]) -> str:
    """JSON with Decimals as strings, so a spilled record loses no precision."""
    return json.dumps(item, default=lambda value: str(value) if isinstance(value, Decimal) else value)


def decode_record(body: str) -> dict[str, Any]:
    item: dict[str, Any] = json.loads(body)
    item["cost_usd"] = Decimal(item["cost_usd"])
    item["prices"] = {name: Decimal(rate) for name, rate in item.get("prices", {}).items()}
    return item


class SqsSpillQueue(AwsResource):
    """The LedgerSpillQueue; the LedgerReplayFunction drains it into the ledger."""

    service = "sqs"

    def __init__(self, queue_url: str, client: Any | None = None):
        super().__init__(client)
        self._queue_url = queue_url

    def send(self, item: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.send_message(QueueUrl=self._queue_url, MessageBody=encode_record(item))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The spill queue is unreachable.") from exc
