"""The KeysTable's item keys, spelled here and nowhere else.

``pk`` / ``sk``:
- ``KEYHASH#<sha256>`` / ``KEY``: one secret of a key (what auth reads with one GetItem). The
  key's current secret also carries ``gsi1pk = ACCOUNT#<account>``, ``gsi1sk = KEY#<key_id>``,
  so the ``ByAccount`` index lists one row per key.
- ``ACCOUNT#<account>`` / ``MEMBER#<member_id>``, ``BALANCE``, ``TOPUP#<created_at>#<topup_id>``.
- ``QUOTA#<key_id>`` / ``SPEND#<period>``: a key's spend counters; ``QUOTA#<key_id>#<n>`` /
  ``MINUTE#<minute>``: its requests and tokens in a minute, in shard n. A key whose per-minute
  limit lets it send more than ``SHARD_WRITES_PER_S`` requests a second counts its minutes in
  several shards (see ``minute_shards``), others in shard 0.

Read copies, so that no item the proxy reads on every request takes more than a share of one
partition's reads (about 3,000 units a second): ``KEYHASH#<sha256>#<c>`` / ``KEY`` for
c < ``KEY_COPIES``, what the reserve reads of a secret (``disabled``, ``valid_until``), written in
the same transactions as the secret's item; ``<pk>#COPY<c>`` / ``<sk>`` for c < ``COUNTER_COPIES``,
copies of a spend counter or of a balance, set from the item by the aggregator (see
``counter_copy_key``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

BY_ACCOUNT_INDEX = "ByAccount"
# Writes a second one minute shard is sized for: DynamoDB takes about 1,000 a second per partition
# key, and a refused conditional write costs one too.
SHARD_WRITES_PER_S = 400
MAX_MINUTE_SHARDS = 32
# A busy key's requests each read one copy of its secret's item, consistently (one read unit):
# 10,000 requests a second make 1,250 a copy. Only the management API writes them.
KEY_COPIES = 8
# Copies of a spend counter or a balance are read eventually consistent (half a unit): 10,000
# requests a second make 1,250 a copy. The aggregator writes each once a batch.
COUNTER_COPIES = 4
# What a secret's copies repeat of its item: what the reserve checks.
KEY_COPY_FIELDS = ("disabled", "valid_until")
# Sort-key prefixes that a query's begins_with() selects by.
KEY_LISTING_PREFIX = "KEY#"
MEMBER_PREFIX = "MEMBER#"
TOPUP_PREFIX = "TOPUP#"
_KEY_HASH = "KEYHASH#"
_COPY = "#COPY"
_BALANCE = "BALANCE"
_SPEND = "SPEND#"


def secret_key(key_hash: str) -> dict[str, str]:
    """The item of one secret, by the hash of that secret."""
    return {"pk": f"{_KEY_HASH}{key_hash}", "sk": "KEY"}


def secret_copy_key(key_hash: str, copy: int) -> dict[str, str]:
    """Copy ``copy`` of a secret's item (see ``KEY_COPIES``)."""
    return {"pk": f"{_KEY_HASH}{key_hash}#{copy}", "sk": "KEY"}


def secret_copy_keys(key_hash: str) -> list[dict[str, str]]:
    return [secret_copy_key(key_hash, copy) for copy in range(KEY_COPIES)]


def counter_copy_key(counter: Mapping[str, object], copy: int) -> dict[str, str]:
    """Copy ``copy`` of a spend counter or balance item (``counter``: its ``pk`` and ``sk``)."""
    return {"pk": f"{counter['pk']}{_COPY}{copy}", "sk": str(counter["sk"])}


def has_copies(counter: Mapping[str, object]) -> bool:
    """Whether the reserve reads copies of this counter: a spend counter or a balance."""
    return is_balance(counter) or str(counter["sk"]).startswith(_SPEND)


def is_balance(item: Mapping[str, object]) -> bool:
    return item["sk"] == _BALANCE


def hash_of(item: Mapping[str, object]) -> str:
    """The secret hash a key item is stored under."""
    return str(item["pk"]).removeprefix(_KEY_HASH)


def account_pk(account_id: str) -> str:
    return f"ACCOUNT#{account_id}"


def account_items(account_id: str, prefix: str) -> dict[str, Any]:
    """A Query's key condition for the account's items whose sort key starts with ``prefix``
    (``MEMBER_PREFIX``, ``TOPUP_PREFIX``), in DynamoDB's JSON."""
    return {
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": account_pk(account_id)}, ":prefix": {"S": prefix}},
    }


def key_listing_sk(key_id: str) -> str:
    """One key's row in the ``ByAccount`` index."""
    return f"{KEY_LISTING_PREFIX}{key_id}"


def listing_attributes(account_id: str, key_id: str) -> dict[str, str]:
    """The ``ByAccount`` index attributes that only a key's current secret carries."""
    return {"gsi1pk": account_pk(account_id), "gsi1sk": key_listing_sk(key_id)}


def member_key(account_id: str, member_id: str) -> dict[str, str]:
    return {"pk": account_pk(account_id), "sk": f"{MEMBER_PREFIX}{member_id}"}


def balance_key(account_id: str) -> dict[str, str]:
    """An account's credit: ``credits_usd`` and ``spent_usd``."""
    return {"pk": account_pk(account_id), "sk": _BALANCE}


def topup_key(account_id: str, created_at: str, topup_id: str) -> dict[str, str]:
    return {"pk": account_pk(account_id), "sk": f"{TOPUP_PREFIX}{created_at}#{topup_id}"}


def spend_key(key_id: str, period: str) -> dict[str, str]:
    """A key's spend in one spend period (``2026-11``, ``2026-W48``, ``ALL``…)."""
    return {"pk": f"QUOTA#{key_id}", "sk": f"{_SPEND}{period}"}


def member_spend_key(account_id: str, member_id: str, since: str, period: str) -> dict[str, str]:
    """A member's spend under the budget set at ``since``, in one period (a label as
    ``spend_key``'s). Apart from the account's partition, whose items a busy account reads."""
    return {"pk": f"{MEMBER_PREFIX}{account_id}#{member_id}#{since}", "sk": f"{_SPEND}{period}"}


def minute_key(key_id: str, minute: str, shard: int = 0) -> dict[str, str]:
    """A key's requests and tokens in one minute (``2026-11-23T14:05``), in one of its shards;
    never in the partition of its spend counters, which take the aggregator's writes."""
    return {"pk": f"QUOTA#{key_id}#{shard}", "sk": f"MINUTE#{minute}"}


def minute_shards(requests_per_minute: int | None) -> int:
    """How many shards a key's minute counter is split into: enough that none is written more than
    ``SHARD_WRITES_PER_S`` times a second when the key sends at its limit (one for a key without a
    requests-per-minute limit: it holds nothing there, the aggregator counts it once a batch)."""
    if requests_per_minute is None:
        return 1
    return max(1, min(MAX_MINUTE_SHARDS, math.ceil(requests_per_minute / 60 / SHARD_WRITES_PER_S)))


def shard_share(limit: int, shards: int) -> int:
    """One shard's part of a per-minute limit."""
    return math.ceil(limit / shards)
