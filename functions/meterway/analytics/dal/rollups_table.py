"""The RollupsTable's item keys, spelled here and nowhere else.

``pk`` / ``sk``:
- ``<account>#<granularity>#<dimension>`` / ``<bucket>#<value>``: one rollup cell, e.g.
  ``acct#day#model`` / ``2026-11-23#openai/gpt-4o-mini``. Bucket labels sort in time order.
  The ``key`` dimension's cells are in ``KEY_SHARDS`` partitions, ``<account>#<granularity>#key#<s>``
  with s = ``key_shard(key_id)``: a batch writes each of its keys' cells, so one partition for all
  of an account's keys would take a write per key and batch. Cells written before the shards are
  in the unsharded partition, which readers add (``read_partitions``). A reader of every key reads
  only the shards of the keys in ``last-used`` (a key's use is recorded there before its first cell).
  The ``user`` and ``app`` dimensions' cells are in ``VALUE_SHARDS`` partitions likewise,
  ``<account>#<granularity>#user#<s>`` with s = ``value_shard(user)``: an application names
  thousands of end users, a batch writes a cell for each. A reader of every user reads every shard.
- ``APPLIED#<request_id>`` / ``#``: the marker that a ledger record's key part was counted (with
  ``part = key``); written without ``part`` by the versions before the parts, it meant the whole
  record was counted. ``APPLIED#<request_id>#account`` / ``#``: its account part's marker.
  ``APPLIED#<request_id>#recount`` / ``#``: the marker that a failed request counted as a request
  was moved into its cells' errors (``recount``).
- ``<account>#last-used`` / ``<key_id>``: when each key was last used.
- ``<account>#parts`` / ``#``: from when every record of the account is counted in two parts.
- ``<account>#errors-apart`` / ``#``: from when the account's failed requests are counted as
  errors, apart from its requests.
- ``APPLIED#<request_id>#attribution`` / ``#``: the marker that a record from before its account's
  ``attribution`` date was added to its user and app cells (``recount``).
- ``<account>#attribution`` / ``#``: from when the account's records are counted by user and app.
- ``<account>#intermediate`` / ``#``: from when the account's in-between rows (10 minutes, 6 hours,
  10 days, year) are complete.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from meterway.accounts.models import key_shard
from meterway.core.clock import Granularity

KEY_DIMENSION = "key"
# 10,000 requests a second from 100 keys: 100 batches a second, each writing each key's cell once
# in a transaction (2 units), 200 units a second per key; a partition takes 1,000, so 5 keys. A new
# key's id is drawn into its account's least used shard (``key_secrets.mint_key``): an account's
# first 128 keys have a shard each. Keys created before that fell in shards at random.

# The dimensions whose values are what clients name (``attribution.py``): as many as they name, so
# sharded by a hash of the value; 16 partitions take 16,000 writes a second.
VALUE_DIMENSIONS = ("user", "app")
VALUE_SHARDS = 16


def value_shard(value: str) -> int:
    """A user's or app's shard: stable across processes and versions (not Python's salted hash)."""
    return int.from_bytes(hashlib.sha256(value.encode()).digest()[:4], "big") % VALUE_SHARDS


def partition(account_id: str, granularity: Granularity, dimension: str) -> str:
    return f"{account_id}#{granularity}#{dimension}"


def cell_partition(account_id: str, granularity: Granularity, dimension: str, value: str) -> str:
    """The partition a cell is written to: its key's shard for the ``key`` dimension, its value's
    for ``user`` and ``app``."""
    if dimension == KEY_DIMENSION:
        return f"{partition(account_id, granularity, dimension)}#{key_shard(value)}"
    if dimension in VALUE_DIMENSIONS:
        return f"{partition(account_id, granularity, dimension)}#{value_shard(value)}"
    return partition(account_id, granularity, dimension)


def read_partitions(account_id: str, granularity: Granularity, dimension: str, keys: Iterable[str] = ()) -> list[str]:
    """The partitions whose rows a reader adds up: the dimension's partition, and for ``key`` the
    shards of ``keys`` too (the keys read: one, or every key the account has used); for ``user``
    and ``app`` the shards of ``keys`` (the values read), every shard when none is named."""
    legacy = partition(account_id, granularity, dimension)
    if dimension in VALUE_DIMENSIONS:
        shards = sorted({value_shard(value) for value in keys}) if keys else range(VALUE_SHARDS)
        return [f"{legacy}#{shard}" for shard in shards]
    if dimension != KEY_DIMENSION:
        return [legacy]
    shards = sorted({key_shard(key_id) for key_id in keys})
    return [legacy, *(f"{legacy}#{shard}" for shard in shards)]


def cell_sk(bucket: str, value: str) -> str:
    return f"{bucket}#{value}"


def split_cell_sk(sk: str) -> tuple[str, str]:
    """The bucket label and the value of a cell's sort key."""
    bucket, _, value = sk.partition("#")
    return bucket, value


def bucket_range(first: str, last: str) -> tuple[str, str]:
    """Sort-key bounds for labels first..last: ``$`` sorts right after ``#``, so ``<last>$`` is
    above every ``<last>#<value>``."""
    return f"{first}#", f"{last}$"


def applied_marker_key(request_id: str) -> dict[str, str]:
    return {"pk": f"APPLIED#{request_id}", "sk": "#"}


def account_marker_key(request_id: str) -> dict[str, str]:
    return {"pk": f"APPLIED#{request_id}#account", "sk": "#"}


def recount_marker_key(request_id: str, job: str = "recount") -> dict[str, str]:
    """The kept marker of a record moved (``recount``) or added to its user and app cells
    (``attribution``) by a ledger command."""
    return {"pk": f"APPLIED#{request_id}#{job}", "sk": "#"}


def change_key(account_id: str, change: str) -> dict[str, str]:
    """Where the start of a change in how the account's records are counted is kept: ``parts``
    (in two parts), ``errors-apart`` (failed requests as errors) or ``attribution`` (by user and app)."""
    return {"pk": f"{account_id}#{change}", "sk": "#"}


def last_used_pk(account_id: str) -> str:
    return f"{account_id}#last-used"


def admin_used_pk(account_id: str) -> str:
    """Where the management API raises its admin keys' last use: apart from the keys whose rollup
    shards are read (``last_used_pk``), since admin keys have none."""
    return f"{account_id}#admin-last-used"


def last_used_key(account_id: str, key_id: str, *, admin: bool = False) -> dict[str, str]:
    return {"pk": (admin_used_pk if admin else last_used_pk)(account_id), "sk": key_id}


def intermediate_key(account_id: str) -> dict[str, str]:
    return {"pk": f"{account_id}#intermediate", "sk": "#"}
