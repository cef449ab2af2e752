"""The LedgerSpillQueue: settlements the ledger could not take, parked for LedgerReplayFunction.

A message is a settlement as JSON: the record, and apart from it the counter deltas it carries
(``counters``), Decimals as strings so that a spilled record loses no precision.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Protocol

from meterway.accounts.models import CounterDelta
from meterway.core.aws import AwsResource
from meterway.core.dynamo import storage_errors


class SpillQueue(Protocol):
    def send(self, item: dict[str, Any]) -> None:
        """Park a settlement the ledger could not take, for the replay function to write later."""


def encode_settlement(item: dict[str, Any]) -> str:
    counters = [CounterDelta.from_item(counter).to_json() for counter in item.get("counters", [])]
    body = {"item": {name: value for name, value in item.items() if name != "counters"}, "counters": counters}
    return json.dumps(body, default=lambda value: str(value) if isinstance(value, Decimal) else value)


def decode_settlement(body: str) -> dict[str, Any]:
    """The ledger item a message holds, its counters in it (messages of every version carry them apart)."""
    data: dict[str, Any] = json.loads(body)
    item: dict[str, Any] = data["item"]
    item["cost_usd"] = Decimal(item["cost_usd"])
    item["prices"] = {name: Decimal(rate) for name, rate in item.get("prices", {}).items()}
    counters = [CounterDelta.from_json(counter).to_item() for counter in data.get("counters", [])]
    if counters:
        item["counters"] = counters
    return item


class SqsSpillQueue(AwsResource):
    service = "sqs"

    def __init__(self, queue_url: str, client: Any | None = None):
        super().__init__(client)
        self._queue_url = queue_url

    def send(self, item: dict[str, Any]) -> None:
        with storage_errors("The spill queue is unreachable."):
            self.client.send_message(QueueUrl=self._queue_url, MessageBody=encode_settlement(item))
