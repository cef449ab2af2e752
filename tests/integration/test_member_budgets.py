"""A member's budget on moto: set from the member's spend of the period so far (the rollups), copied
onto every key of theirs and their secrets in overlap, carried by keys made later (even while it
changes), checked by the reserve in its one round like a key's own spend limit, and counted by the
aggregator from the records of every key of the member."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meterway.accounts.dal.key_admin_store import DynamoKeyAdminStore
from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.dal.member_store import DynamoMemberStore
from meterway.accounts.dal.spend_counters import DynamoSpendCounters
from meterway.accounts.logic.limits import counter_deltas, plan_reservation, refusal
from meterway.accounts.logic.manage_keys import create_key, find_key, rotate_key
from meterway.accounts.logic.manage_members import budget_spent, create_member, set_budget
from meterway.analytics.dal.rollup_store import DynamoRollupStore
from meterway.analytics.logic.key_usage import RollupMemberSpend
from meterway.analytics.logic.rollups import contribution, count_records
from meterway.core.errors import QuotaExceeded
from meterway.ledger.models import TokenUsage, UsageRecord
from tests.integration.test_reservation_checks import Account, refused_cause

NOW = datetime(2026, 12, 2, 10, 0, 5, tzinfo=UTC)
MEMBER = "ann@example.com"


@pytest.fixture
def team(aws_env, dynamo):
    account = Account(aws_env, dynamo)
    members, keys = DynamoMemberStore(account.table), DynamoKeyStore(account.table)
    counters = DynamoSpendCounters(account.table)
    rollups = DynamoRollupStore(aws_env["RollupsTable"], counters_table=account.table)
    create_member(members, "acct", MEMBER, "Ann", now=NOW - timedelta(days=40))
    return account, members, keys, rollups, counters


def spent_by(rollups: DynamoRollupStore, key, at: datetime, cost: str) -> None:
    """A request of ``key`` at ``at`` costing ``cost``, counted by the aggregator."""
    record = UsageRecord(
        f"gen-{at.timestamp()}-{key.key_id}", at, key, "openai/gpt-4o-mini", "openai", "chat.completions", False
    )
    record.tokens, record.cost_usd = TokenUsage(input_tokens=10), Decimal(cost)
    item = record.to_item()
    item["counters"] = [delta.to_item() for delta in counter_deltas(plan_reservation(key, at), Decimal(cost), 10)]
    assert not count_records(rollups, [contribution(item)], now=at).failed


def test_a_budget_starts_from_the_periods_spend_and_every_key_of_the_member_carries_it(team):
    account, members, keys, rollups, counters = team
    first, _ = create_key(keys, "acct", "laptop", member=MEMBER, now=NOW - timedelta(days=35))
    second, _ = create_key(keys, "acct", "ci", member=MEMBER, now=NOW - timedelta(days=35))
    spent_by(rollups, first, NOW - timedelta(days=31), "0.50")  # last month: not in this month's budget
    spent_by(rollups, first, NOW - timedelta(days=1), "0.25")
    spent_by(rollups, second, NOW - timedelta(hours=1), "0.125")
    # A secret of the first key still in its overlap after a rotation
    admin = DynamoKeyAdminStore(account.table)
    rotated, _ = rotate_key(admin, find_key(admin, "acct", first.key_id), 3600, NOW)
    old_hash = rotated.retired_hashes[0]

    member = members.get("acct", MEMBER)
    updated = set_budget(members, admin, counters, RollupMemberSpend(rollups), member, (Decimal("1"), "monthly"), NOW)

    assert updated.budget is not None and updated.budget.since == "2026-12-02T10:00:05.000Z"
    assert budget_spent(counters, [updated], NOW) == {MEMBER: Decimal("0.375")}
    for key_hash in (
        rotated.key_hash,
        old_hash,
        *(r.key_hash for r in admin.list_records("acct") if r.key.key_id == second.key_id),
    ):
        assert keys.get_by_hash(key_hash).member_budget == updated.budget
    # A key made later carries it (its write checks the member's budget is the one it copies)
    later, _ = create_key(keys, "acct", "phone", member=MEMBER, now=NOW)
    assert later.member_budget == updated.budget == keys.get_key("acct", later.key_id).member_budget
    # Both keys' requests count in the member's counter; the reserve refuses once it is reached
    key = keys.get_by_hash(rotated.key_hash)
    assert refused_cause(account, key, rotated.key_hash) is None
    spent_by(rollups, later, NOW + timedelta(minutes=1), "0.625")
    assert budget_spent(counters, [updated], NOW + timedelta(minutes=2)) == {MEMBER: Decimal("1.000")}
    assert refused_cause(account, key, rotated.key_hash, NOW + timedelta(minutes=2)) == "member"
    # A key without a member budget is not held back by it
    other, other_secret = account.key()
    assert refused_cause(account, other, other_secret) is None
    # The client is told whose limit it is, and when it resets
    told = refusal("member", plan_reservation(key, NOW), NOW)
    assert isinstance(told, QuotaExceeded) and told.code == "member_spend_limit_reached"
    assert "$1" in told.message and "2027-01-01T00:00:00.000Z" in told.message

    # A new budget starts a counter of its own, from the spend so far; removing it frees the keys
    weekly = set_budget(
        members,
        admin,
        counters,
        RollupMemberSpend(rollups),
        updated,
        (Decimal("5"), "weekly"),
        NOW + timedelta(minutes=3),
    )
    assert budget_spent(counters, [weekly], NOW + timedelta(minutes=3)) == {MEMBER: Decimal("1.000")}
    assert keys.get_by_hash(rotated.key_hash).member_budget == weekly.budget
    assert (
        refused_cause(account, keys.get_by_hash(rotated.key_hash), rotated.key_hash, NOW + timedelta(minutes=3)) is None
    )
    cleared = set_budget(members, admin, counters, RollupMemberSpend(rollups), weekly, None, NOW + timedelta(minutes=4))
    assert cleared.budget is None and keys.get_by_hash(old_hash).member_budget is None
