"""The ledger: one item per request in the LedgerTable, written exactly once with a conditional
put on its ``request_id``.

Records are read by time through two indexes on ``created_sk = <created_at>#<request_id>``:
``ByAccountTime`` (``account_id``) and ``ByKeyTime`` (``key_id``).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from meterway.core.aws import RAW_BODY, AwsResource, deserialize, serialize
from meterway.core.dynamo import ConditionFailed, storage_errors
from meterway.ledger.attribution import NONE

if TYPE_CHECKING:
    from meterway.core.dynamo_http import DynamoHttp

UNAVAILABLE = "The ledger is unavailable; try again."
NOT_WRITTEN = "The ledger did not accept the usage record."
_NEW_RECORD = "attribute_not_exists(request_id)"


@dataclass(frozen=True, slots=True)
class LedgerQuery:
    """An account's records created in [start, end] (ISO ``created_at`` text, compared with
    ``created_sk``), optionally one key's, one model's, one user's or app's (``(none)``: the
    records that name none), or those of one ``status`` (with the failed attempts, whose request
    may be of that status)."""

    account_id: str
    start: str
    end: str
    key_id: str | None = None
    model: str | None = None
    status: str | None = None
    user: str | None = None
    app: str | None = None

    def named(self) -> dict[str, str]:
        """The user and app filtered on, by the record's field."""
        return {name: value for name, value in (("user", self.user), ("app", self.app)) if value}


def projection(fields: Sequence[str]) -> list[str]:
    """The attributes ``wire_pages`` asks for to read ``fields``: those, and the table's and the
    indexes' keys, which a page's LastEvaluatedKey is made of."""
    return list(dict.fromkeys([*fields, "request_id", "account_id", "key_id", "created_sk"]))


class _WirePage(msgspec.Struct):
    """What ``wire_pages`` reads of a Query's answer; its ``Items`` stay the JSON text they came in."""

    Count: int = 0
    Items: msgspec.Raw = msgspec.Raw(b"[]")
    LastEvaluatedKey: dict[str, Any] | None = None


_WIRE_PAGE = msgspec.json.Decoder(_WirePage)


class LedgerStore(Protocol):
    def put(self, item: dict[str, Any]) -> bool:
        """Write a record; False when a record with that request id is already there."""

    async def write(self, item: dict[str, Any]) -> bool:
        """``put`` without leaving the event loop (the proxy's settle)."""

    def get(self, request_id: str) -> dict[str, Any] | None:
        """One record by request id."""

    def page(
        self, query: LedgerQuery, limit: int, start_key: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Records of ``query``, newest first, at most ``limit``, from after ``start_key``; and the
        key to start the next page from (None at the end)."""

    def wire_pages(
        self, query: LedgerQuery, page_size: int = 1000, fields: Sequence[str] | None = None
    ) -> Iterator[bytes]:
        """Every record of ``query``, oldest first, one page at a time: the page's ``Items`` as the
        Query answered them, a JSON array of records in DynamoDB's JSON (``{"S": …}``, ``{"N": …}``
        per attribute), with only their ``fields`` when given. Pages with no record are left out."""


class DynamoLedgerStore(AwsResource):
    """The LedgerTable."""

    def __init__(
        self,
        table_name: str,
        client: Any | None = None,
        *,
        wire_client: Any | None = None,
        dynamo: DynamoHttp | None = None,
    ):
        super().__init__(client, wire_client=wire_client, dynamo=dynamo)
        self._table = table_name

    def put(self, item: dict[str, Any]) -> bool:
        try:
            with storage_errors(NOT_WRITTEN):
                self.client.put_item(**self._new_record(item))
        except ConditionFailed:
            return False
        return True

    async def write(self, item: dict[str, Any]) -> bool:
        try:
            with storage_errors(NOT_WRITTEN):
                await self.dynamo.call("PutItem", self._new_record(item))
        except ConditionFailed:
            return False
        return True

    def _new_record(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"TableName": self._table, "Item": serialize(item), "ConditionExpression": _NEW_RECORD}

    def get(self, request_id: str) -> dict[str, Any] | None:
        with storage_errors(UNAVAILABLE):
            response = self.client.get_item(
                TableName=self._table, Key=serialize({"request_id": request_id}), ConsistentRead=True
            )
        item = response.get("Item")
        return deserialize(item) if item else None

    def page(
        self, query: LedgerQuery, limit: int, start_key: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        arguments = self._window_query(query, newest_first=True)
        items: list[dict[str, Any]] = []
        with storage_errors(UNAVAILABLE):
            # Limit counts items evaluated before the filter, so ask for what is still missing
            # until the page is full: the last evaluated key is then exactly the next start.
            while len(items) < limit:
                if start_key:
                    arguments["ExclusiveStartKey"] = start_key
                response = self.client.query(Limit=limit - len(items), **arguments)
                items.extend(deserialize(item) for item in response.get("Items", []))
                start_key = response.get("LastEvaluatedKey")
                if not start_key:
                    break
        return items, start_key or None

    def wire_pages(
        self, query: LedgerQuery, page_size: int = 1000, fields: Sequence[str] | None = None
    ) -> Iterator[bytes]:
        """Every record of the query, oldest first, ``page_size`` read at a time, as DynamoDB sent
        it. For exports: botocore's parser and ``deserialize`` cost about 130 µs a record, ten times
        what it takes to write the record's CSV row from its JSON. Only the answer's ``Count`` and
        ``LastEvaluatedKey`` are decoded here; its items are left to the reader, as text. ``fields``
        leaves the rest of each record in the table (the counters a settled record carries are a
        third of it). The next page is read while the caller works on the one it has."""
        arguments = self._window_query(query, newest_first=False)
        if fields:
            names = {f"#f{number}": name for number, name in enumerate(projection(fields))}
            arguments["ProjectionExpression"] = ", ".join(names)
            arguments["ExpressionAttributeNames"] = {**arguments.get("ExpressionAttributeNames", {}), **names}
        # Read ahead: the next page is asked for as soon as this one's last key is known, so that
        # DynamoDB's time for it passes while the reader turns this one into rows. Two pages are
        # held at most. Each read runs in a copy of the caller's context (its logging keys, the
        # invocation it belongs to), as if the caller made it.
        with ThreadPoolExecutor(1, thread_name_prefix="ledger-read-ahead") as reader:

            def ask(start: dict[str, Any]) -> Future[bytes]:
                return reader.submit(contextvars.copy_context().run, self._query_body, start, page_size)

            coming = ask(dict(arguments))
            while True:
                answer = _WIRE_PAGE.decode(coming.result())
                if answer.LastEvaluatedKey is not None:
                    arguments["ExclusiveStartKey"] = answer.LastEvaluatedKey
                    coming = ask(dict(arguments))
                if answer.Count:
                    yield bytes(answer.Items)
                if answer.LastEvaluatedKey is None:
                    return

    def _query_body(self, arguments: dict[str, Any], limit: int) -> bytes:
        with storage_errors(UNAVAILABLE):
            body: bytes = self.wire_client.query(Limit=limit, **arguments)[RAW_BODY]
        return body

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
        names: dict[str, str] = {}
        if query.key_id:
            # A key id is unique, but the account check keeps a key filter inside its account.
            filters.append("account_id = :account")
            values[":account"] = query.account_id
        if query.model:
            filters.append("model = :model")
            values[":model"] = query.model
        if query.status:
            # The records of one status, and every failed attempt (its request may be of it).
            filters.append("(attribute_exists(attempt_of) OR #status = :status)")  # status: a reserved word
            values[":status"] = query.status
            names["#status"] = "status"
        for field, value in query.named().items():
            # user: a reserved word. A record that names none has no such attribute.
            absent = f"attribute_not_exists(#{field}) OR " if value == NONE else ""
            filters.append(f"({absent}#{field} = :{field})")
            values[f":{field}"] = value
            names[f"#{field}"] = field
        if names:
            arguments["ExpressionAttributeNames"] = names
        if filters:
            arguments["FilterExpression"] = " AND ".join(filters)
        arguments["ExpressionAttributeValues"] = serialize(values)
        return arguments
