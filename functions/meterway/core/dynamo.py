"""DynamoDB for the stores: boto errors mapped to domain errors in one place, transactions with
their cancellation reasons made readable, and update expressions built from plain values.

A store wraps each call in ``storage_errors("The ledger is unavailable; try again.")``: a failed
condition comes out as ``ConditionFailed``, a transaction cancelled by one of its conditions as
``TransactionCancelled`` (which item failed, and what it held when asked), and anything else
(throttling after retries, an outage, a transaction that lost a race) as ``StorageError``, or as
its subclass ``Contention`` when a transaction was cancelled without any condition failing. The
store decides what each means for it; logic decides what the client is told.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from meterway.core.aws import deserialize, serialize
from meterway.core.errors import StorageError

CONDITION_FAILED = "ConditionalCheckFailed"
# DynamoDB's limits of items in one TransactWriteItems and of keys in one BatchGetItem.
MAX_TRANSACTION_ITEMS = 100
MAX_BATCH_GET_KEYS = 100
# Keys a BatchGetItem leaves unprocessed (throttled) are asked again after 50 ms, 100 ms … 1 s.
_UNPROCESSED_RETRIES = 8


class ConditionFailed(Exception):
    """A single write's condition did not hold; ``item`` is what the item held, when asked for."""

    def __init__(self, item: dict[str, Any] | None = None):
        super().__init__("condition failed")
        self.item = item


@dataclass(frozen=True, slots=True)
class Reason:
    """Why one item of a cancelled transaction failed; ``code`` None when it did not."""

    code: str | None
    item: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.code not in (None, "", "None")


class TransactionCancelled(Exception):
    """At least one condition of a transaction failed; ``reasons`` has one entry per item, in order."""

    def __init__(self, reasons: list[Reason]):
        super().__init__("transaction cancelled")
        self.reasons = reasons

    def failed(self, index: int) -> Reason | None:
        """The reason of item ``index`` when that item's condition failed, else None."""
        reason = self.reasons[index] if index < len(self.reasons) else None
        return reason if reason is not None and reason.code == CONDITION_FAILED else None

    @property
    def failed_indexes(self) -> list[int]:
        """The items whose condition failed, in order."""
        return [index for index in range(len(self.reasons)) if self.failed(index)]

    @property
    def only_conditions(self) -> bool:
        """Whether every failing item failed its condition (nothing else went wrong)."""
        return all(reason.code == CONDITION_FAILED for reason in self.reasons if reason.failed)


class Contention(StorageError):
    """A transaction was cancelled without any condition failing: it raced another transaction on
    the same items, or was throttled. Trying again shortly usually works."""


def _boto_errors() -> tuple[type[Exception], ...]:
    # Evaluated only when an exception reaches the handler: botocore stays off the import path.
    from botocore.exceptions import BotoCoreError, ClientError

    from meterway.core.dynamo_http import DynamoCallFailed

    return BotoCoreError, ClientError, DynamoCallFailed


@contextmanager
def storage_errors(unavailable: str) -> Iterator[None]:
    """Map what boto, or the event loop's client (``dynamo_http``), raises inside the block to
    domain errors (see the module's docstring);
    ``unavailable`` is the message of the ``StorageError``."""
    try:
        yield
    except _boto_errors() as exc:
        raise _domain_error(exc, unavailable) from exc


def _domain_error(exc: Exception, unavailable: str) -> Exception:
    response: Mapping[str, Any] = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    if code == f"{CONDITION_FAILED}Exception":
        old = response.get("Item")
        return ConditionFailed(deserialize(old) if old else None)
    if code == "TransactionCanceledException":
        reasons = _reasons(response)
        if any(reason.code == CONDITION_FAILED for reason in reasons):
            return TransactionCancelled(reasons)
        return Contention(unavailable)
    return StorageError(unavailable)


def _reasons(response: Mapping[str, Any]) -> list[Reason]:
    listed = response.get("CancellationReasons")
    if listed:
        return [
            Reason(reason.get("Code"), deserialize(reason["Item"]) if reason.get("Item") else None) for reason in listed
        ]
    # Some endpoints give the reasons only in the message: "... [ConditionalCheckFailed, None]".
    codes = response.get("Error", {}).get("Message", "").rpartition("[")[2].rstrip("]")
    return [Reason(code.strip() or None) for code in codes.split(",")]


def transact(client: Any, items: list[dict[str, Any]], unavailable: str) -> None:
    """Write ``items`` all or nothing (see ``storage_errors`` for what a failure raises)."""
    with storage_errors(unavailable):
        client.transact_write_items(TransactItems=items)


def update_if(client: Any, request: dict[str, Any], unavailable: str) -> dict[str, Any] | None:
    """Apply one ``update_item`` request whose condition may fail: None when it did, else the
    attributes the update returned (what its ``ReturnValues`` asks for; ``{}`` when it asks for
    none, which is a success too: test the answer with ``is not None``)."""
    try:
        with storage_errors(unavailable):
            response = client.update_item(**request)
    except ConditionFailed:
        return None
    return deserialize(response.get("Attributes", {}))


def batch_get(
    client: Any, table: str, keys: Sequence[Mapping[str, Any]], unavailable: str, **options: Any
) -> list[dict[str, Any]]:
    """The items of ``keys`` that exist, asked 100 keys a call with ``options`` (``ConsistentRead``,
    ``ProjectionExpression``…); a StorageError when DynamoDB keeps leaving some unprocessed."""
    found: list[dict[str, Any]] = []
    with storage_errors(unavailable):
        for start in range(0, len(keys), MAX_BATCH_GET_KEYS):
            chunk = [serialize(dict(key)) for key in keys[start : start + MAX_BATCH_GET_KEYS]]
            request: dict[str, Any] = {table: {"Keys": chunk, **options}}
            for attempt in range(_UNPROCESSED_RETRIES + 1):
                response = client.batch_get_item(RequestItems=request)
                found.extend(deserialize(item) for item in response.get("Responses", {}).get(table, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                if attempt == _UNPROCESSED_RETRIES:
                    raise StorageError(unavailable)
                time.sleep(min(1.0, 0.05 * 2**attempt))
    return found


@dataclass
class Update:
    """An UpdateExpression, its condition and their placeholders, built from plain Python values.

    Attribute names always go through ``#`` placeholders (``name`` and ``status`` are reserved
    words); a ``set`` to None removes the attribute. A condition is written with its own ``:``
    and ``#`` placeholders, given in ``values`` and ``names``.
    """

    set: Mapping[str, Any] = field(default_factory=dict)
    set_if_absent: Mapping[str, Any] = field(default_factory=dict)
    add: Mapping[str, Any] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    condition: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)

    def request(self, table: str, key: Mapping[str, Any]) -> dict[str, Any]:
        """The ``update_item`` arguments (also a transaction's ``Update``) for ``key`` in ``table``."""
        names: dict[str, str] = dict(self.names)
        values: dict[str, Any] = dict(self.values)
        sets: list[str] = []
        removes: list[str] = []
        adds: list[str] = []

        def placeholder(attribute: str) -> str:
            alias = _fresh("#u", names)
            names[alias] = attribute
            return alias

        def value(given: Any) -> str:
            alias = _fresh(":u", values)
            values[alias] = given
            return alias

        for attribute, given in self.set.items():
            if given is None:
                removes.append(placeholder(attribute))
            else:
                sets.append(f"{placeholder(attribute)} = {value(given)}")
        for attribute, given in self.set_if_absent.items():
            alias = placeholder(attribute)
            sets.append(f"{alias} = if_not_exists({alias}, {value(given)})")
        for attribute in self.remove:
            removes.append(placeholder(attribute))
        for attribute, given in self.add.items():
            adds.append(f"{placeholder(attribute)} {value(given)}")
        clauses = [
            f"{verb} {', '.join(parts)}" for verb, parts in (("SET", sets), ("REMOVE", removes), ("ADD", adds)) if parts
        ]
        request: dict[str, Any] = {
            "TableName": table,
            "Key": serialize(dict(key)),
            "UpdateExpression": " ".join(clauses),
        }
        if names:
            request["ExpressionAttributeNames"] = names
        if values:
            request["ExpressionAttributeValues"] = serialize(values)
        if self.condition:
            request["ConditionExpression"] = self.condition
        return request


def _fresh(prefix: str, taken: Mapping[str, Any]) -> str:
    """The first ``<prefix><n>`` not among ``taken`` (a condition's own placeholders)."""
    index = len(taken)
    while f"{prefix}{index}" in taken:
        index += 1
    return f"{prefix}{index}"
