"""Two fixes to moto 5.2's DynamoDB for the local stack and the tests (never deployed):

- TransactWriteItems backs up a whole table for every item of a transaction (a deep copy per
  item), so a transaction costs time in proportion to the table's size times its items; the
  local stack would crawl after a few thousand requests, though real DynamoDB does not. This
  version backs up only the items the transaction touches and restores them if any part fails,
  which is what DynamoDB's all-or-nothing semantics ask for.
- moto server answers requests on parallel threads, but its DynamoDB writes are unlocked
  read-modify-writes: two concurrent ``ADD``s to one counter can lose one (seen: a key's spend
  counter one request short of its ledger), and concurrent writes can share a stream sequence
  number (seen: 600 records, 595 numbers). DynamoDB applies each item write atomically; one lock
  around moto's DynamoDB requests restores that. moto is bound by one interpreter lock anyway,
  so this costs it next to nothing.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

_MARK = "_meterway_item_level_backup"


_DYNAMODB_LOCK = threading.RLock()


def apply() -> None:
    """Patch moto's DynamoDB backend (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    if not getattr(DynamoDBBackend.transact_write_items, _MARK, False):
        setattr(transact_write_items, _MARK, True)
        DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    if not getattr(DynamoHandler.call_action, _MARK, False):
        DynamoHandler.call_action = _serialised(DynamoHandler.call_action)  # type: ignore[method-assign]


def _serialised(call_action: Any) -> Any:
    def serialised_call_action(self: Any) -> Any:
        with _DYNAMODB_LOCK:
            return call_action(self)

    setattr(serialised_call_action, _MARK, True)
    return serialised_call_action


def _key_of(backend: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        key: dict[str, Any] = op["Key"]
        return key
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def _restore(backend: Any, touched: list[tuple[str, dict[str, Any], Any]]) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    for table_name, key, original in reversed(touched):
        table = backend.get_table(table_name)
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        container = table.items[hash_value] if range_value is not None else table.items
        slot = range_value if range_value is not None else hash_value
        if original is None:
            container.pop(slot, None)
        else:
            container[slot] = original


def _write(backend: Any, op_type: str, op: dict[str, Any], key: dict[str, Any]) -> None:
    common = {
        "condition_expression": op.get("ConditionExpression"),
        "expression_attribute_names": op.get("ExpressionAttributeNames"),
        "expression_attribute_values": op.get("ExpressionAttributeValues"),
    }
    if op_type == "Put":
        backend.put_item(op["TableName"], op["Item"], **common)
    elif op_type == "Delete":
        backend.delete_item(op["TableName"], key, **common)
    elif op_type == "Update":
        backend.update_item(op["TableName"], key, update_expression=op["UpdateExpression"], **common)


def _check(backend: Any, op: dict[str, Any], current: Any) -> None:
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import ConditionalCheckFailed

    expression = op.get("ConditionExpression")
    if expression is None:
        return
    condition = get_filter_expression(
        expression, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    )
    if not condition.expr(current):
        raise ConditionalCheckFailed(item=_old_image(op, current))


def _old_image(op: dict[str, Any], current: Any) -> dict[str, Any] | None:
    if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
        image: dict[str, Any] = current.to_json()["Attributes"]
        return image
    return None


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    touched: list[tuple[str, dict[str, Any], Any]] = []
    targets: set[tuple[str, str]] = set()
    errors: list[tuple[Any, Any, Any]] = []
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        op, current = {}, None
        try:
            op_type, op = next(iter(entry.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            key = _key_of(self, op_type, op)
            target = (str(op["TableName"]), str(dict(sorted(key.items()))))
            if target in targets:
                raise MultipleTransactionsException()
            targets.add(target)
            current = self.get_item(op["TableName"], key)
            touched.append((op["TableName"], key, copy.deepcopy(current)))
            _check(self, op, current)
            _write(self, op_type, op, key)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            _restore(self, touched)
            raise
        except ConditionalCheckFailed as error:
            errors.append(("ConditionalCheckFailed", str(error.message), _old_image(op, current)))
        except Exception as error:  # noqa: BLE001 - moto reports any failure as a cancellation reason
            errors.append((type(error).__name__, str(error), None))
    if any(code is not None for code, _, _ in errors):
        _restore(self, touched)
        raise TransactionCanceledException(errors)
