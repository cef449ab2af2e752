"""The read copies of spend counters and balances (see ``keys_table``): set from their item, so that
a busy key's or account's reads spread over ``keys_table.COUNTER_COPIES`` items.

Every change to a counter adds one to its ``version`` (the aggregator's counts, top-ups), and a copy
is only ever set to a later version than it holds: copies set from two reads, in either order, end
at the later one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meterway.accounts.dal import keys_table
from meterway.core.aws import serialize
from meterway.core.dynamo import ConditionFailed, batch_get, storage_errors

UNAVAILABLE = "The key store is unavailable; try again."
# What a copy repeats of its counter, with the counter's ``version``.
COPIED_FIELDS = ("spent_usd", "credits_usd", "expires_at")


def spread(client: Any, table: str, counters: Iterable[tuple[str, str]]) -> int:
    """Set the copies of ``counters`` (``pk``, ``sk``) that have copies to what the counters hold
    now: spend counters, and balances of accounts with credit (the proxy reads no other balance).
    How many copies were written; ``StorageError`` when DynamoDB did not answer."""
    wanted = [{"pk": pk, "sk": sk} for pk, sk in dict.fromkeys(counters) if keys_table.has_copies({"pk": pk, "sk": sk})]
    if not wanted:
        return 0
    written = 0
    for item in batch_get(client, table, wanted, UNAVAILABLE, ConsistentRead=True):
        if keys_table.is_balance(item) and item.get("credits_usd") is None:
            continue
        state = {name: item[name] for name in COPIED_FIELDS if name in item} | {"version": item.get("version", 0)}
        for copy in range(keys_table.COUNTER_COPIES):
            written += _set_copy(client, table, keys_table.counter_copy_key(item, copy), state)
    return written


def _set_copy(client: Any, table: str, key: dict[str, str], state: dict[str, Any]) -> int:
    """1 if the copy took ``state``, 0 if it holds that version or a later one already."""
    put = {
        "TableName": table,
        "Item": serialize(key | state),
        "ConditionExpression": "attribute_not_exists(version) OR version < :version",
        "ExpressionAttributeValues": serialize({":version": state["version"]}),
    }
    try:
        with storage_errors(UNAVAILABLE):
            client.put_item(**put)
    except ConditionFailed:
        return 0
    return 1
