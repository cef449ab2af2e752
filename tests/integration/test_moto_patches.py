"""The local stack's TransactWriteItems keeps DynamoDB's all-or-nothing semantics, and its fast
counter updates leave exactly what moto's own would."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack import moto_patches


@pytest.fixture
def table(aws_env):
    moto_patches.apply()
    return aws_env["RollupsTable"]


def add(table: str, sk: str, amount: int) -> dict:
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": {"S": "p"}, "sk": {"S": sk}},
            "UpdateExpression": "ADD n :n",
            "ExpressionAttributeValues": {":n": {"N": str(amount)}},
        }
    }


def marker(table: str, name: str) -> dict:
    return {
        "Put": {
            "TableName": table,
            "Item": {"pk": {"S": f"APPLIED#{name}"}, "sk": {"S": "#"}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def value(table: str, sk: str) -> int | None:
    item = boto3.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": sk}}).get("Item")
    return int(item["n"]["N"]) if item else None


def test_a_transaction_writes_all_of_its_items(table):
    boto3.client("dynamodb").transact_write_items(
        TransactItems=[marker(table, "r1"), add(table, "a", 2), add(table, "b", 3)]
    )
    assert (value(table, "a"), value(table, "b")) == (2, 3)


def test_a_failed_condition_anywhere_leaves_every_item_as_it_was(table):
    client = boto3.client("dynamodb")
    client.transact_write_items(TransactItems=[marker(table, "r1"), add(table, "a", 2)])
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(TransactItems=[add(table, "a", 5), add(table, "c", 1), marker(table, "r1")])
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    assert (value(table, "a"), value(table, "c")) == (2, None)


def test_the_same_item_twice_in_one_transaction_is_refused(table):
    with pytest.raises(ClientError) as refused:
        boto3.client("dynamodb").transact_write_items(TransactItems=[add(table, "a", 1), add(table, "a", 1)])
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert value(table, "a") is None


COUNTERS = ("requests", "cost_usd", "#n0")
# At most 6 places: moto writes a sum like 0 + 0.0000000 as "0E-7", which its own next ADD cannot
# read (so neither path could go on); the app's serializer keeps its numbers in plain notation.
NUMBERS = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.decimals(min_value=-1000, max_value=1000, places=6, allow_nan=False).map(lambda number: format(number, "f")),
)


@st.composite
def counter_updates(draw: st.DrawFn) -> dict:
    """An update that only adds to or sets numbers: the kind the patch applies itself."""
    names = draw(st.lists(st.sampled_from(COUNTERS), min_size=1, max_size=3, unique=True))
    adds = draw(st.lists(st.sampled_from(names), unique=True))
    sets = [name for name in names if name not in adds]
    values = {f":v{index}": {"N": draw(NUMBERS)} for index in range(len(names))}
    placeholders = iter(values)
    clauses = []
    if adds:
        clauses.append("ADD " + ", ".join(f"{name} {next(placeholders)}" for name in adds))
    if sets:
        keep = draw(st.booleans())
        actions = [
            f"{name} = if_not_exists({name}, {value})" if keep else f"{name} = {value}"
            for name, value in zip(sets, placeholders, strict=False)
        ]
        clauses.append("SET " + ", ".join(actions))
    update: dict = {
        "Key": {"pk": {"S": "p"}, "sk": {"S": draw(st.sampled_from(["a", "b"]))}},
        "UpdateExpression": " ".join(draw(st.permutations(clauses))),
        "ExpressionAttributeValues": values,
    }
    if "#n0" in names:
        update["ExpressionAttributeNames"] = {"#n0": "tokens"}
    return update


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(updates=st.lists(counter_updates(), min_size=1, max_size=6))
def test_counter_updates_in_a_transaction_leave_what_moto_itself_leaves(aws_env, updates):
    # Given the same updates, one by one through moto's own UpdateItem and in transactions
    moto_patches.apply()
    client = boto3.client("dynamodb")
    for table in (aws_env["RollupsTable"], aws_env["KeysTable"]):
        for sk in ("a", "b"):
            client.delete_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": sk}})
    plain, transacted = aws_env["RollupsTable"], aws_env["KeysTable"]
    for update in updates:
        client.update_item(TableName=plain, **update)
        client.transact_write_items(TransactItems=[{"Update": {"TableName": transacted, **update}}])
    # Then both tables hold the same items, to the last digit
    for sk in ("a", "b"):
        key = {"pk": {"S": "p"}, "sk": {"S": sk}}
        assert client.get_item(TableName=transacted, Key=key).get("Item") == client.get_item(
            TableName=plain, Key=key
        ).get("Item")


def test_an_add_to_a_string_is_refused_as_moto_refuses_it(table):
    client = boto3.client("dynamodb")
    key = {"pk": {"S": "p"}, "sk": {"S": "a"}}
    client.put_item(TableName=table, Item={**key, "n": {"S": "text"}})
    with pytest.raises(ClientError) as refused:
        client.transact_write_items(TransactItems=[add(table, "a", 1), add(table, "b", 1)])
    # moto refuses it before its transaction starts writing (DynamoDB would cancel the transaction)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert client.get_item(TableName=table, Key=key)["Item"]["n"] == {"S": "text"}
    assert value(table, "b") is None


def test_other_updates_still_go_through_moto(table):
    client = boto3.client("dynamodb")
    key = {"pk": {"S": "p"}, "sk": {"S": "a"}}
    update = {
        "TableName": table,
        "Key": key,
        "UpdateExpression": "SET #name = :name, tags = list_append(if_not_exists(tags, :empty), :tags) REMOVE gone",
        "ExpressionAttributeNames": {"#name": "name"},
        "ExpressionAttributeValues": {":name": {"S": "x"}, ":empty": {"L": []}, ":tags": {"L": [{"S": "t"}]}},
    }
    client.transact_write_items(TransactItems=[{"Update": update}])
    item = client.get_item(TableName=table, Key=key)["Item"]
    assert item["name"] == {"S": "x"} and item["tags"] == {"L": [{"S": "t"}]}


@pytest.mark.parametrize("stored", ["2E-7", "0E-8", "1E+2", "2.4E-7"])
def test_a_number_in_exponent_form_is_added_to_exactly(table, stored):
    # DynamoDB hands numbers back in this form; moto read one without a point as an int, and failed
    client = boto3.client("dynamodb")
    key = {"pk": {"S": "p"}, "sk": {"S": f"exp-{stored}"}}
    client.put_item(TableName=table, Item=key | {"n": {"N": stored}})

    client.transact_write_items(TransactItems=[add(table, f"exp-{stored}", 3)])
    client.update_item(
        TableName=table, Key=key, UpdateExpression="ADD n :n", ExpressionAttributeValues={":n": {"N": "1E-9"}}
    )

    found = client.get_item(TableName=table, Key=key)["Item"]["n"]["N"]
    assert Decimal(found) == Decimal(stored) + 3 + Decimal("1E-9")


def in_thread(enter, entered: threading.Event, leave: threading.Event) -> threading.Thread:
    """A thread that takes the lock ``enter()`` gives, says so, and holds it until ``leave``."""

    def hold() -> None:
        with enter():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def test_reads_share_moto_s_lock_and_a_write_waits_for_them_and_goes_before_later_reads():
    lock = moto_patches._SharedReads()
    first, second, write, late = (threading.Event() for _ in range(4))
    release_first, release_rest = threading.Event(), threading.Event()
    in_thread(lock.reading, first, release_first)
    assert first.wait(5)
    # A second read does not wait for the first (an export's long Query does not hold up a lookup)
    in_thread(lock.reading, second, release_rest)
    assert second.wait(5)
    # A write waits for both reads; a read that comes after it waits for the write
    in_thread(lock.writing, write, release_rest)
    deadline = time.monotonic() + 5
    while not lock._writers_waiting:  # the write is waiting before the next read comes
        assert time.monotonic() < deadline
        time.sleep(0.01)
    in_thread(lock.reading, late, release_rest)
    assert not write.wait(0.3) and not late.is_set()
    release_first.set()
    release_rest.set()
    assert write.wait(5) and late.wait(5)


def test_a_write_holds_moto_s_lock_alone_and_may_take_it_again():
    lock = moto_patches._SharedReads()
    with lock.writing():
        with lock.writing(), lock.reading():  # moto calls itself within a transaction
            pass
        reader, release = threading.Event(), threading.Event()
        in_thread(lock.reading, reader, release)
        assert not reader.wait(0.3)
    assert reader.wait(5)
    release.set()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.sets(st.tuples(st.sampled_from("abc"), st.integers(0, 40)), max_size=60),
    asked=st.sampled_from("abcd"),
    bounds=st.tuples(st.integers(0, 40), st.integers(0, 40)),
    forward=st.booleans(),
    limit=st.integers(1, 7),
)
def test_a_query_of_one_partition_answers_what_dynamodb_would(table, items, asked, bounds, forward, limit):
    # Given items in a few partitions (the table's other items from earlier examples in others)
    client = boto3.client("dynamodb")
    prefix = f"q{time.monotonic_ns()}#"
    for pk, n in items:
        client.put_item(TableName=table, Item={"pk": {"S": prefix + pk}, "sk": {"S": f"{n:02d}"}, "n": {"N": str(n)}})
    low, high = sorted(bounds)

    # When one partition is queried between two sort keys, page by page
    pages = client.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
        ExpressionAttributeValues={
            ":pk": {"S": prefix + asked},
            ":low": {"S": f"{low:02d}"},
            ":high": {"S": f"{high:02d}"},
        },
        ScanIndexForward=forward,
        PaginationConfig={"PageSize": limit},
    )
    answered = [int(item["n"]["N"]) for page in pages for item in page["Items"]]

    # Then it holds that partition's items in range, in sort-key order, as DynamoDB's would
    expected = sorted((n for pk, n in items if pk == asked and low <= n <= high), reverse=not forward)
    assert answered == expected


def test_a_query_of_an_index_still_reads_the_whole_table(aws_env):
    moto_patches.apply()
    client = boto3.client("dynamodb")
    tables = client.list_tables()["TableNames"]
    indexed = next(
        (name, index)
        for name in tables
        for index in client.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", [])
        if len(index["KeySchema"]) == 2 and index["Projection"]["ProjectionType"] == "ALL"
    )
    name, index = indexed
    schema = {entry["KeyType"]: entry["AttributeName"] for entry in index["KeySchema"]}
    table_keys = {e["KeyType"]: e["AttributeName"] for e in client.describe_table(TableName=name)["Table"]["KeySchema"]}
    for n in range(6):  # in six partitions of the table, two of the index
        item = {table_keys["HASH"]: {"S": f"t{n}"}, schema["HASH"]: {"S": f"i{n % 2}"}, schema["RANGE"]: {"S": f"{n}"}}
        if "RANGE" in table_keys:
            item.setdefault(table_keys["RANGE"], {"S": "#"})
        client.put_item(TableName=name, Item=item)

    found = client.query(
        TableName=name,
        IndexName=index["IndexName"],
        KeyConditionExpression="#h = :h",
        ExpressionAttributeNames={"#h": schema["HASH"]},
        ExpressionAttributeValues={":h": {"S": "i1"}},
    )["Items"]

    assert [item[schema["RANGE"]]["S"] for item in found] == ["1", "3", "5"]
