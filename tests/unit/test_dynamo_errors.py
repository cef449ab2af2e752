"""The one mapping from what boto raises to what a store can act on, including the answers moto
never gives (a transaction that lost a race, reasons listed only in the message)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from meterway.core.dynamo import ConditionFailed, Contention, TransactionCancelled, storage_errors
from meterway.core.errors import StorageError


def client_error(code: str, message: str = "", **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, **extra}, "TransactWriteItems")


def raised_by(exc: Exception) -> Exception:
    with pytest.raises(Exception) as caught, storage_errors("The table is unavailable."):
        raise exc
    return caught.value


def test_a_failed_condition_says_what_the_item_held():
    error = raised_by(client_error("ConditionalCheckFailedException", Item={"disabled": {"BOOL": True}}))
    assert isinstance(error, ConditionFailed) and error.item == {"disabled": True}


def test_a_cancelled_transaction_says_which_items_failed_their_condition():
    reasons = [{"Code": "None"}, {"Code": "ConditionalCheckFailed", "Item": {"n": {"N": "3"}}}]
    error = raised_by(client_error("TransactionCanceledException", CancellationReasons=reasons))
    assert isinstance(error, TransactionCancelled)
    assert error.failed_indexes == [1] and error.failed(0) is None
    assert error.failed(1) is not None and error.failed(1).item == {"n": 3}
    assert error.only_conditions


def test_reasons_given_only_in_the_message_are_read_from_it():
    message = (
        "Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed]"
    )
    error = raised_by(client_error("TransactionCanceledException", message))
    assert isinstance(error, TransactionCancelled) and error.failed_indexes == [1]


def test_a_transaction_that_lost_a_race_is_contention_and_retryable():
    reasons = [{"Code": "TransactionConflict"}, {"Code": "None"}]
    error = raised_by(client_error("TransactionCanceledException", CancellationReasons=reasons))
    assert isinstance(error, Contention) and isinstance(error, StorageError)
    assert error.message == "The table is unavailable."


def test_a_condition_failing_beside_a_conflict_is_not_only_conditions():
    reasons = [{"Code": "ConditionalCheckFailed"}, {"Code": "TransactionConflict"}]
    error = raised_by(client_error("TransactionCanceledException", CancellationReasons=reasons))
    assert isinstance(error, TransactionCancelled) and not error.only_conditions


@pytest.mark.parametrize(
    "exc",
    [
        client_error("ProvisionedThroughputExceededException", "Rate of requests exceeds the allowed throughput"),
        client_error("ResourceNotFoundException", "Requested resource not found"),
        EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"),
    ],
)
def test_anything_else_is_the_stores_unavailability_in_its_own_words(exc):
    error = raised_by(exc)
    assert type(error) is StorageError and error.status == 503
    assert error.message == "The table is unavailable."
    assert error.__cause__ is exc
