"""DynamoDB on-demand request units of the calls the counting relay saw (bench/gateway_cost.py).

The rules (DynamoDB developer guide, "Read/write capacity mode" and "Transactions"):
- a write costs 1 write request unit (WRU) per KB of the item, rounded up; an Update or Delete
  counts the size of the whole item, not of the change;
- a strongly consistent read costs 1 read request unit (RRU) per 4 KB, rounded up; an eventually
  consistent one half that;
- in a transaction every item costs double: 2 WRU per KB written, 2 RRU per 4 KB read. A
  ConditionCheck in TransactWriteItems is taken as a transactional read of its item (assumed:
  no figure for it is on the pricing page).

Item size follows DynamoDB's own counting: attribute names plus values, strings and binaries by
their bytes, a number about one byte per two significant digits plus one, a map or list 3 bytes
plus one per element plus its contents. Items that a call names only by key (Update, Delete,
ConditionCheck, GetItem) are sized as stored after the run, by ``stored_size``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KB = 1024
StoredSize = Callable[[str, dict[str, Any]], int]  # (table, key in wire format) -> item bytes


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB's wire format (``{"S": "..."}``, ``{"M": {...}}``)."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "B":
        return len(data) if isinstance(data, bytes) else len(base64.b64decode(data))
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").strip("0")
        return (len(digits) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: element}) for element in data)
    if kind == "M":
        return 3 + sum(len(name.encode()) + value_size(element) + 1 for name, element in data.items())
    if kind == "L":
        return 3 + sum(value_size(element) + 1 for element in data)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


@dataclass
class Units:
    wru: float = 0.0
    rru: float = 0.0

    def add(self, other: Units) -> None:
        self.wru += other.wru
        self.rru += other.rru


def _write(size: int, factor: int = 1) -> Units:
    return Units(wru=factor * max(1, math.ceil(size / KB)))


def _read(size: int, factor: float = 1) -> Units:
    return Units(rru=factor * max(1, math.ceil(size / (4 * KB))))


def transact_write_units(body: dict[str, Any], stored_size: StoredSize) -> Units:
    units = Units()
    for entry in body["TransactItems"]:
        ((action, spec),) = entry.items()
        if action == "Put":
            units.add(_write(item_size(spec["Item"]), factor=2))
        elif action in ("Update", "Delete"):
            units.add(_write(stored_size(spec["TableName"], spec["Key"]), factor=2))
        else:  # ConditionCheck
            units.add(_read(stored_size(spec["TableName"], spec["Key"]), factor=2))
    return units


def _transact_get(body: dict[str, Any], stored_size: StoredSize) -> Units:
    units = Units()
    for entry in body["TransactItems"]:
        units.add(_read(stored_size(entry["Get"]["TableName"], entry["Get"]["Key"]), factor=2))
    return units


def _batch_get(body: dict[str, Any], stored_size: StoredSize) -> Units:
    units = Units()
    for table, request in body["RequestItems"].items():
        factor = 1 if request.get("ConsistentRead") else 0.5
        for key in request["Keys"]:
            units.add(_read(stored_size(table, key), factor))
    return units


def _batch_write(body: dict[str, Any], stored_size: StoredSize) -> Units:
    units = Units()
    for table, requests in body["RequestItems"].items():
        for request in requests:
            put, delete = request.get("PutRequest"), request.get("DeleteRequest")
            units.add(_write(item_size(put["Item"]) if put else stored_size(table, delete["Key"])))
    return units


def _get(body: dict[str, Any], stored_size: StoredSize) -> Units:
    return _read(stored_size(body["TableName"], body["Key"]), 1 if body.get("ConsistentRead") else 0.5)


def _limited_query(body: dict[str, Any], _: StoredSize) -> Units:
    """A Query with a ``Limit``, taken as reading that many items of up to 1 KB (the rollup rows the
    aggregator asks one of are under that). Its real units depend on what it read."""
    if "Limit" not in body:
        raise ValueError("no request units for a Query without a Limit: they depend on what it read")
    return _read(int(body["Limit"]) * KB, 1 if body.get("ConsistentRead") else 0.5)


UNITS_BY_OPERATION: dict[str, Callable[[dict[str, Any], StoredSize], Units]] = {
    "Query": _limited_query,
    "TransactWriteItems": transact_write_units,
    "TransactGetItems": _transact_get,
    "BatchGetItem": _batch_get,
    "BatchWriteItem": _batch_write,
    "GetItem": _get,
    "PutItem": lambda body, _: _write(item_size(body["Item"])),
    "UpdateItem": lambda body, stored_size: _write(stored_size(body["TableName"], body["Key"])),
    "DeleteItem": lambda body, stored_size: _write(stored_size(body["TableName"], body["Key"])),
}


# Control-plane calls are not billed by request unit.
FREE = frozenset({"DescribeTable", "ListTables", "DescribeTimeToLive", "ListTagsOfResource"})


def call_units(operation: str, body: dict[str, Any], stored_size: StoredSize) -> Units:
    """The request units of one call, by its operation and request body. A Query's depend on what
    it read, which its request does not say: only one with a ``Limit`` is counted (see
    ``_limited_query``)."""
    if operation in FREE:
        return Units()
    if operation not in UNITS_BY_OPERATION:
        raise ValueError(f"no request units for {operation}")
    return UNITS_BY_OPERATION[operation](body, stored_size)
