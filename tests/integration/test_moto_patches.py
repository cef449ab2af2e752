"""The local stack's TransactWriteItems keeps DynamoDB's all-or-nothing semantics."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

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
