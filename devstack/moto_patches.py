"""Five fixes to moto 5.2's DynamoDB for the local stack and the tests (never deployed):

- TransactWriteItems backs up a whole table for every item of a transaction (a deep copy per
  item), so a transaction costs time in proportion to the table's size times its items; the
  local stack would crawl after a few thousand requests, though real DynamoDB does not. This
  version backs up only the items the transaction touches and restores them if any part fails,
  which is what DynamoDB's all-or-nothing semantics ask for.
- moto server answers requests on parallel threads, but its DynamoDB writes are unlocked
  read-modify-writes: two concurrent ``ADD``s to one counter can lose one (seen: a key's spend
  counter one request short of its ledger), and concurrent writes can share a stream sequence
  number (seen: 600 records, 595 numbers). DynamoDB applies each item write atomically; a lock
  around moto's DynamoDB requests restores that: a write runs alone, reads (``GetItem``,
  ``Query``…) run beside each other but never beside a write. Reads share it because a `Query`
  of a thousand projected ledger records holds it for seconds in moto, and a key lookup waiting
  behind a whole export made the local management API time out (seen: 30 s). moto is bound by
  one interpreter lock anyway, so this costs it next to nothing.
- moto validates an update expression by walking its syntax tree a dozen times (≈10 ms an item)
  after parsing it character by character (≈1 ms), so an aggregator transaction of 100 rollup
  items took about a second. A transaction's updates that only add to or set numbers (the
  counters of rollups, quotas and settlements) are applied here directly, with moto's own
  arithmetic and checks; any other update still goes through moto. Parsed update expressions are
  kept, since the stores send the same few again and again.
- moto adds two numbers by reading one without a decimal point as an ``int``: a number that
  DynamoDB gives back in exponent form without one (``2E-7``, the cost of 10 embedding tokens)
  makes every later ``ADD`` to it fail, so a counter holding it could never be added to again.
  DynamoDB adds any two numbers exactly; here both are read as ``Decimal``s.
- moto answers a table's Query by sorting every item of the table, then keeping the asked
  partition's: 0.33 s a Query at 26k items (the demo data's rollups), whatever the partition
  holds, so a console page that reads a few partitions took seconds. Here a Query of the table
  (not of an index) starts from the asked partition's items only, the same ones moto would keep;
  moto then sorts, pages and filters them as before.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import re
import threading
from collections.abc import Iterator
from typing import Any

_MARK = "_meterway_item_level_backup"


# DynamoDB's operations that change nothing: they may run beside each other.
_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "DescribeTable", "ListTables", "DescribeTimeToLive"})


class _SharedReads:
    """A lock that readers share and a writer holds alone. A waiting writer goes before readers
    that come after it, so a stream of reads cannot keep a write out. A thread that holds it may
    take it again (moto calls itself within a transaction)."""

    def __init__(self) -> None:
        self._state = threading.Condition()
        self._readers = 0
        self._writer: int | None = None
        self._depth = 0
        self._writers_waiting = 0

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._writer == me:
            yield
            return
        with self._state:
            self._state.wait_for(lambda: self._writer is None and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._state:
                self._readers -= 1
                self._state.notify_all()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._state:
            if self._writer != me:
                self._writers_waiting += 1
                self._state.wait_for(lambda: self._writer is None and not self._readers)
                self._writers_waiting -= 1
                self._writer = me
            self._depth += 1
        try:
            yield
        finally:
            with self._state:
                self._depth -= 1
                if not self._depth:
                    self._writer = None
                    self._state.notify_all()


_DYNAMODB_LOCK = _SharedReads()


def apply() -> None:
    """Patch moto's DynamoDB backend (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodb.responses import DynamoHandler

    if not getattr(DynamoDBBackend.transact_write_items, _MARK, False):
        setattr(transact_write_items, _MARK, True)
        DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    if not getattr(DynamoHandler.call_action, _MARK, False):
        DynamoHandler.call_action = _serialised(DynamoHandler.call_action)  # type: ignore[method-assign]
    if not getattr(UpdateExpressionParser.make, _MARK, False):
        UpdateExpressionParser.make = staticmethod(_remembered(UpdateExpressionParser.make))  # type: ignore[method-assign,assignment]
    if not getattr(Table.query, _MARK, False):
        Table.query = _one_partition(Table.query)  # type: ignore[method-assign]
        Table.all_items = _partition_items(Table.all_items)  # type: ignore[method-assign]
    if not getattr(DynamoType.__add__, _MARK, False):
        DynamoType.__add__ = _exact(DynamoType.__add__, lambda a, b: a + b)  # type: ignore[method-assign]
        DynamoType.__sub__ = _exact(DynamoType.__sub__, lambda a, b: a - b)  # type: ignore[method-assign]


# The table whose Query runs on this thread, and its asked partition's items (see ``_one_partition``).
_QUERIED = threading.local()
# Off while ``whole_table_queries`` runs.
_ONE_PARTITION = {"on": True}


@contextlib.contextmanager
def whole_table_queries() -> Iterator[None]:
    """moto's own Query (every item of the table sorted) while this runs: a bench checks with it
    that reading one partition changes no answer on its data."""
    _ONE_PARTITION["on"] = False
    try:
        yield
    finally:
        _ONE_PARTITION["on"] = True


def _one_partition(query: Any) -> Any:
    """moto's ``Table.query``, with ``all_items`` giving only the asked partition's items while a
    Query of the table itself runs: moto keeps exactly those (``item.hash_key == hash_key``)."""
    signature = inspect.signature(query)

    def query_one_partition(self: Any, *args: Any, **kwargs: Any) -> Any:
        asked = signature.bind(self, *args, **kwargs).arguments
        hash_key = asked.get("hash_key")
        if not _ONE_PARTITION["on"] or asked.get("index_name") or hash_key is None or not self.range_key_attr:
            return query(self, *args, **kwargs)
        _QUERIED.table, _QUERIED.items = self, list(self.items.get(hash_key, {}).values())
        try:
            return query(self, *args, **kwargs)
        finally:
            _QUERIED.table = _QUERIED.items = None

    setattr(query_one_partition, _MARK, True)
    return query_one_partition


def _partition_items(all_items: Any) -> Any:
    def partition_items(self: Any) -> Any:
        if getattr(_QUERIED, "table", None) is self:
            return list(_QUERIED.items)
        return all_items(self)

    return partition_items


def _exact(moto_op: Any, op: Any) -> Any:
    """A number operation of moto's DynamoType on ``Decimal``s, whatever form the numbers take."""
    from decimal import Decimal

    from moto.dynamodb.models.dynamo_type import DynamoType

    def exact(self: Any, other: Any) -> Any:
        if self.type != other.type or not self.is_number():
            return moto_op(self, other)
        return DynamoType({"N": str(op(Decimal(self.value), Decimal(other.value)))})

    setattr(exact, _MARK, True)
    return exact


def _remembered(make: Any) -> Any:
    """moto parses an update expression character by character (≈1 ms each) before every write;
    the stores send the same few expressions again and again. Its parse result is only read, or
    deep-copied before it is changed, so one per expression serves every write. A syntax error
    raises every time, as before (exceptions are not cached)."""

    @functools.lru_cache(maxsize=256)
    def remembered_make(expression: str) -> Any:
        return make(expression)

    setattr(remembered_make, _MARK, True)
    return remembered_make


def _serialised(call_action: Any) -> Any:
    def serialised_call_action(self: Any) -> Any:
        operation = str(self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        with _DYNAMODB_LOCK.reading() if operation in _READS else _DYNAMODB_LOCK.writing():
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
    elif op_type == "Update" and not _counter_update(backend, op, key):
        backend.update_item(op["TableName"], key, update_expression=op["UpdateExpression"], **common)


# moto's own limit on an item (LimitedSizeDict): between DynamoDB's documented 400 KB and the real one.
ITEM_SIZE_LIMIT = 405_000
_TOKEN = re.compile(r"\s*([#:]?\w+|[=,()])")


def _counter_update(backend: Any, op: dict[str, Any], key: dict[str, Any]) -> bool:
    """Apply an update that only adds to numbers or sets numbers, the way moto would, without
    moto's expression validator (≈10 ms an item, most of an aggregator transaction's time).
    False, having changed nothing, for any other update: moto then handles it as usual."""
    from moto.dynamodb.exceptions import ItemSizeToUpdateTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import bytesize

    values: dict[str, Any] = op.get("ExpressionAttributeValues") or {}
    plan = _counter_plan(op["UpdateExpression"], op.get("ExpressionAttributeNames") or {}, values)
    table = backend.get_table(op["TableName"])
    if plan is None or any(name in (table.hash_key_attr, table.range_key_attr) for _, name, _ in plan):
        return False
    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    item = table.get_item(hash_value, range_value)
    adds = [name for action, name, _ in plan if action == "ADD"]
    if item is not None and any(name in item.attrs and not item.attrs[name].is_number() for name in adds):
        return False
    before = copy.deepcopy(item) if table.stream_shard is not None else None
    if item is None:
        # As moto does: the key first (its own stream record, if any), then the update.
        table.put_item({name: key[name] for name in (table.hash_key_attr, table.range_key_attr) if name})
        item = table.get_item(hash_value, range_value)
    changed: dict[str, Any] = {}
    for action, name, placeholder in plan:
        value = DynamoType(values[placeholder])
        if action == "ADD":
            changed[name] = item.attrs.get(name, DynamoType({"N": "0"})) + value
        elif action == "SET" or name not in item.attrs:
            changed[name] = value
    # moto's item dict sums the whole item's size on every assignment; once is enough here.
    if sum(bytesize(name) + value.size() for name, value in (item.attrs | changed).items()) > ITEM_SIZE_LIMIT:
        raise ItemSizeToUpdateTooLarge()
    dict.update(item.attrs, changed)
    if table.stream_shard is not None:
        table.stream_shard.add(before, item)
    return True


def _counter_plan(expression: str, names: dict[str, str], values: dict[str, Any]) -> list[tuple[str, str, str]] | None:
    """``ADD a :x, …`` and ``SET b = :y`` or ``SET b = if_not_exists(b, :y)`` clauses whose values
    are numbers, as (action, attribute, value placeholder); None for any other expression."""
    tokens = _tokens(expression)
    plan: list[tuple[str, str, str]] = []
    clauses: set[str] = set()
    position = 0
    try:
        while position < len(tokens):
            clause = tokens[position].upper()
            if clause not in ("ADD", "SET") or clause in clauses:
                return None
            clauses.add(clause)
            position += 1
            while True:
                action, position = _counter_action(clause, tokens, position, names)
                if action is None or values.get(action[2], {}).keys() != {"N"}:
                    return None
                plan.append(action)
                if position == len(tokens) or tokens[position] != ",":
                    break
                position += 1
    except IndexError:
        return None
    targets = [name for _, name, _ in plan]
    return plan if plan and len(set(targets)) == len(targets) else None


def _counter_action(
    clause: str, tokens: list[str], position: int, names: dict[str, str]
) -> tuple[tuple[str, str, str] | None, int]:
    name = _attribute(tokens[position], names)
    if name is None:
        return None, position
    if clause == "ADD":
        return ("ADD", name, tokens[position + 1]), position + 2
    if tokens[position + 1] != "=":
        return None, position
    if tokens[position + 2].lower() != "if_not_exists":
        return ("SET", name, tokens[position + 2]), position + 3
    inner = tokens[position + 3 : position + 8]
    if inner[0] != "(" or _attribute(inner[1], names) != name or inner[2] != "," or inner[4] != ")":
        return None, position
    return ("SET_IF_MISSING", name, inner[3]), position + 8


def _attribute(token: str, names: dict[str, str]) -> str | None:
    """A top-level attribute's name: a ``#placeholder``'s, or a plain name that is no reserved word."""
    if token.startswith("#"):
        return names.get(token)
    if not (token[0].isalpha() or token[0] == "_"):
        return None
    return None if token.upper() in _reserved_words() else token


@functools.cache
def _reserved_words() -> frozenset[str]:
    from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords

    return frozenset(ReservedKeywords.get_reserved_keywords())


def _tokens(expression: str) -> list[str]:
    """The expression's words and punctuation; empty when it holds anything else (paths with
    dots or indexes, arithmetic, functions other than ``if_not_exists``…)."""
    tokens, position, end = [], 0, len(expression.rstrip())
    while position < end:
        match = _TOKEN.match(expression, position)
        if match is None:
            return []
        tokens.append(match.group(1))
        position = match.end()
    return tokens


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
