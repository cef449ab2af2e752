"""A new API key's id falls in the shard its account's keys use least, so that an account's busy
keys do not share a partition of the rollups' key dimension (README: "Hot items")."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from meterway.accounts.logic.key_secrets import least_used_shard
from meterway.accounts.logic.manage_keys import create_key
from meterway.accounts.models import KEY_SHARDS, key_shard
from tests.fakes import InMemoryKeyStore


def test_an_accounts_keys_fill_every_shard_before_any_shard_takes_a_second():
    keys = InMemoryKeyStore()
    created = [create_key(keys, "acct", f"key-{n}")[0] for n in range(KEY_SHARDS + 72)]

    shards = Counter(key_shard(key.key_id) for key in created)
    assert sorted(shards[shard] for shard in range(KEY_SHARDS)) == [1] * 56 + [2] * 72
    assert len({key_shard(key.key_id) for key in created[:KEY_SHARDS]}) == KEY_SHARDS


def test_other_accounts_and_admin_keys_take_no_shard_of_the_account():
    keys = InMemoryKeyStore()
    create_key(keys, "acct", "ops", kind="admin")
    theirs = [create_key(keys, "other", f"theirs-{n}")[0] for n in range(3)]
    ours = [create_key(keys, "acct", f"ours-{n}")[0] for n in range(3)]

    assert [key_shard(key.key_id) for key in ours] == [0, 1, 2]
    assert [key_shard(key.key_id) for key in theirs] == [0, 1, 2]


def test_a_deleted_keys_shard_is_the_next_keys():
    keys = InMemoryKeyStore()
    created = [create_key(keys, "acct", f"key-{n}")[0] for n in range(5)]
    live = [key for key in created if key_shard(key.key_id) != 2]

    assert least_used_shard(live) == 2
    # A key listed twice (a secret in its rotation overlap) counts once
    assert least_used_shard([*live, replace(live[0], name="the same key")]) == 2
