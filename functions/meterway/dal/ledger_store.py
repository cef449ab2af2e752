"""The ledger: one item per request, written exactly once with a conditional put on its id."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from meterway.dal.aws import AwsResource, deserialize, serialize
from meterway.errors import InvalidRequest, StorageError
from meterway.logic.quotas import CounterDelta


class LedgerStore(Protocol):
    def put(self, item: dict[str, Any]) -> bool:
        """Write a record; False when a record with that request id is already there."""

    def get(self, request_id: str) -> dict[str, Any] | None:
        """One record by request id."""

    def settle(self, item: dict[str, Any], counters: list[CounterDelta]) -> bool:
        """Write a record and add its counters in one step; False (and nothing written) when the
        record is already there."""

    def page(
        self, query: LedgerQuery, limit: int, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Records of ``query``, newest first, at most ``limit``, and the cursor of the next page."""

    def pages(self, query: LedgerQuery, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Every record of ``query``, oldest first, one page at a time."""


@dataclass(frozen=True, slots=True)
class LedgerQuery:
    """An account's records created in [start, end) (ISO ``created_at`` strings), optionally one
    key's or one model's."""

    account_id: str
    start: str
    end: str
    key_id: str | None = None
    model: str | None = None


def encode_cursor(last_key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(last_key, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str, query: LedgerQuery) -> dict[str, Any]:
    """The DynamoDB start key in a cursor; one that was not made for this query is a 400."""
    try:
        last_key: dict[str, Any] = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        owner = last_key["key_id"]["S"] if query.key_id else last_key["account_id"]["S"]
        position = last_key["created_sk"]["S"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest("The cursor is not valid.", code="invalid_cursor") from exc
    if owner != (query.key_id or query.account_id) or not query.start <= position <= query.end:
        raise InvalidRequest("The cursor belongs to another query.", code="invalid_cursor")
    return last_key


class SpillQueue(Protocol):
    def send(self, item: dict[str, Any], counters: list[CounterDelta]) -> None:
        """Park a settlement the ledger could not take, for the replay function to write later."""


class DynamoLedgerStore(AwsResource):
    """The LedgerTable, keyed by ``request_id``; settlements also add to counters in the KeysTable."""

    def __init__(self, table_name: str, client: Any | None = None, *, counters_table: str | None = None):
        super().__init__(client)
        self._table = table_name
        self._counters_table = counters_table or table_name

    def put(self, item: dict[str, Any]) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

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

    def settle(self, item: dict[str, Any], counters: list[CounterDelta]) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        if not counters:
            return self.put(item)
        record = {
            "Put": {
                "TableName": self._table,
                "Item": serialize(item),
                "ConditionExpression": "attribute_not_exists(request_id)",
            }
        }
        try:
            self.client.transact_write_items(TransactItems=[record, *(self._add(counter) for counter in counters)])
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or [{}]
            if reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise StorageError("The ledger did not accept the usage record.") from exc
        except BotoCoreError as exc:
            raise StorageError("The ledger is unreachable.") from exc
        return True

    def _add(self, counter: CounterDelta) -> dict[str, Any]:
        names = {f"#c{index}": name for index, name in enumerate(counter.deltas)}
        values = {f":c{index}": value for index, value in enumerate(counter.deltas.values())}
        return {
            "Update": {
                "TableName": self._counters_table,
                "Key": serialize({"pk": counter.pk, "sk": counter.sk}),
                "UpdateExpression": "ADD " + ", ".join(f"#c{index} :c{index}" for index in range(len(names))),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": serialize(values),
            }
        }

    def get(self, request_id: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_item(
                TableName=self._table, Key={"request_id": {"S": request_id}}, ConsistentRead=True
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The ledger is unavailable; try again.") from exc
        item = response.get("Item")
        return deserialize(item) if item else None

    def page(
        self, query: LedgerQuery, limit: int, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        from botocore.exceptions import BotoCoreError, ClientError

        arguments = self._window_query(query, newest_first=True)
        start_key = decode_cursor(cursor, query) if cursor else None
        items: list[dict[str, Any]] = []
        try:
            # Limit counts items evaluated before the filter, so ask for what is still missing
            # until the page is full: the last evaluated key is then exactly the next cursor.
            while len(items) < limit:
                if start_key:
                    arguments["ExclusiveStartKey"] = start_key
                response = self.client.query(Limit=limit - len(items), **arguments)
                items.extend(deserialize(item) for item in response.get("Items", []))
                start_key = response.get("LastEvaluatedKey")
                if not start_key:
                    break
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The ledger is unavailable; try again.") from exc
        return items, encode_cursor(start_key) if start_key else None

    def pages(self, query: LedgerQuery, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Every record of the query, oldest first, ``page_size`` read at a time (for exports)."""
        from botocore.exceptions import BotoCoreError, ClientError

        arguments = self._window_query(query, newest_first=False)
        while True:
            try:
                response = self.client.query(Limit=page_size, **arguments)
            except (BotoCoreError, ClientError) as exc:
                raise StorageError("The ledger is unavailable; try again.") from exc
            items = [deserialize(item) for item in response.get("Items", [])]
            if items:
                yield items
            if "LastEvaluatedKey" not in response:
                return
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _window_query(self, query: LedgerQuery, *, newest_first: bool) -> dict[str, Any]:
        index, owner_name = ("ByKeyTime", "key_id") if query.key_id else ("ByAccountTime", "account_id")
        values: dict[str, Any] = {":owner": query.key_id or query.account_id, ":low": query.start, ":high": query.end}
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": f"{owner_name} = :owner AND created_sk BETWEEN :low AND :high",
            "ScanIndexForward": not newest_first,
        }
        filters = []
        if query.key_id:
            # A key id is unique, but the account check keeps a key filter inside its account.
            filters.append("account_id = :account")
            values[":account"] = query.account_id
        if query.model:
            filters.append("model = :model")
            values[":model"] = query.model
        if filters:
            arguments["FilterExpression"] = " AND ".join(filters)
        arguments["ExpressionAttributeValues"] = serialize(values)
        return arguments


def encode_record(item: dict[str, Any], counters: list[CounterDelta] | None = None) -> str:
    """A settlement as JSON, Decimals as strings so that a spilled record loses no precision."""
    body = {"item": item, "counters": [counter.to_json() for counter in counters or []]}
    return json.dumps(body, default=lambda value: str(value) if isinstance(value, Decimal) else value)


def decode_record(body: str) -> tuple[dict[str, Any], list[CounterDelta]]:
    data: dict[str, Any] = json.loads(body)
    item: dict[str, Any] = data["item"]
    item["cost_usd"] = Decimal(item["cost_usd"])
    item["prices"] = {name: Decimal(rate) for name, rate in item.get("prices", {}).items()}
    return item, [CounterDelta.from_json(counter) for counter in data.get("counters", [])]


class SqsSpillQueue(AwsResource):
    """The LedgerSpillQueue; the LedgerReplayFunction drains it into the ledger."""

    service = "sqs"

    def __init__(self, queue_url: str, client: Any | None = None):
        super().__init__(client)
        self._queue_url = queue_url

    def send(self, item: dict[str, Any], counters: list[CounterDelta]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.send_message(QueueUrl=self._queue_url, MessageBody=encode_record(item, counters))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The spill queue is unreachable.") from exc
