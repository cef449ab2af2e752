from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterway.accounts.dal.quota_store import Standing
from meterway.accounts.logic.key_status import key_status
from meterway.accounts.logic.limits import (
    Headroom,
    check_model_allowed,
    counter_deltas,
    period_window,
    plan_reservation,
)
from meterway.accounts.models import ApiKey, Budget, CounterDelta, KeyLimits
from meterway.core.clock import seconds_to_next_minute
from meterway.core.errors import PermissionDenied


@pytest.mark.parametrize(
    ("period", "now", "label", "reset"),
    [
        ("daily", datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC), "2026-02-28", datetime(2026, 3, 1, tzinfo=UTC)),
        ("weekly", datetime(2026, 1, 1, 12, tzinfo=UTC), "2026-W01", datetime(2026, 1, 5, tzinfo=UTC)),
        ("weekly", datetime(2027, 1, 3, 23, tzinfo=UTC), "2026-W53", datetime(2027, 1, 4, tzinfo=UTC)),
        ("monthly", datetime(2026, 12, 31, 23, 0, tzinfo=UTC), "2026-12", datetime(2027, 1, 1, tzinfo=UTC)),
        ("none", datetime(2026, 12, 31, tzinfo=UTC), "ALL", None),
    ],
)
def test_spend_periods_start_at_utc_midnight_monday_and_the_first(period, now, label, reset):
    assert period_window(period, now) == (label, reset)


def test_a_request_settles_against_the_counters_it_reserved():
    key = ApiKey(
        "key_1",
        "acct",
        "ci",
        limits=KeyLimits(spend_limit_usd=Decimal(5), spend_period="daily", requests_per_minute=10),
    )
    reservation = plan_reservation(key, datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC))
    settled = {(d.pk, d.sk): d.deltas for d in counter_deltas(reservation, Decimal("0.25"), 1200)}
    assert settled == {
        ("QUOTA#key_1", "SPEND#2026-11-23"): {"spent_usd": Decimal("0.25")},
        ("QUOTA#key_1#0", "MINUTE#2026-11-23T23:59"): {"tokens": 1200},
        ("ACCOUNT#acct", "BALANCE"): {"spent_usd": Decimal("0.25")},
    }


def test_a_key_without_limits_is_held_only_against_the_account_and_counted_when_it_settles():
    reservation = plan_reservation(ApiKey("key_1", "acct", "ci"), datetime(2026, 11, 23, 10, 4, 59, tzinfo=UTC))
    assert not reservation.checks_spend and not reservation.holds_minute
    settled = {(d.pk, d.sk): (d.deltas, d.expires_at) for d in counter_deltas(reservation, Decimal("0.25"), 1200)}
    a_day_after_the_minute = int(datetime(2026, 11, 24, 10, 4, tzinfo=UTC).timestamp())
    assert settled == {
        ("QUOTA#key_1", "SPEND#ALL"): ({"spent_usd": Decimal("0.25")}, None),
        ("QUOTA#key_1#0", "MINUTE#2026-11-23T10:04"): ({"requests": 1, "tokens": 1200}, a_day_after_the_minute),
        ("ACCOUNT#acct", "BALANCE"): ({"spent_usd": Decimal("0.25")}, None),
    }


def test_counter_deltas_survive_the_spill_queue_exactly():
    delta = CounterDelta("QUOTA#k", "SPEND#ALL", {"spent_usd": Decimal("0.000000123")})
    assert CounterDelta.from_json(delta.to_json()) == delta
    expiring = CounterDelta("QUOTA#k", "MINUTE#2026-11-23T10:04", {"requests": 1, "tokens": 3}, 1_795_000_000)
    assert CounterDelta.from_json(expiring.to_json()) == expiring


def test_only_allowed_models_pass():
    key = ApiKey("key_1", "acct", "ci", limits=KeyLimits(allowed_models=("openai/gpt-4o-mini",)))
    check_model_allowed(key, "openai/gpt-4o-mini")
    with pytest.raises(PermissionDenied):
        check_model_allowed(key, "anthropic/claude-opus-4-1")


def test_key_status_reports_limit_usage_remaining_and_reset():
    key = ApiKey(
        "key_1",
        "acct",
        "ci",
        limits=KeyLimits(spend_limit_usd=Decimal(2), spend_period="monthly", requests_per_minute=60),
    )
    now = datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC)
    state = {
        "spend": {"spent_usd": Decimal("0.5")},
        "minute": {"requests": 7, "tokens": 900},
        "balance": {},
    }
    status = key_status(key, state, now)
    assert status["usage"] == {"spend_usd": "0.5", "requests_this_minute": 7, "tokens_this_minute": 900}
    assert status["remaining"]["spend_usd"] == "1.5"
    assert status["remaining"]["requests_this_minute"] == 53
    assert status["next_reset"] == "2026-12-01T00:00:00.000Z"
    assert status["balance_usd"] is None
    assert seconds_to_next_minute(now) == 30


@pytest.mark.parametrize(
    ("limits", "standing", "far"),
    [
        (KeyLimits(), Standing(), True),
        (KeyLimits(spend_limit_usd=Decimal(10)), Standing(spent_usd=Decimal("7.99")), True),
        (KeyLimits(spend_limit_usd=Decimal(10)), Standing(spent_usd=Decimal(8)), False),
        (KeyLimits(), Standing(credits_usd=Decimal(10), credit_left_usd=Decimal("2.01")), True),
        (KeyLimits(), Standing(credits_usd=Decimal(10), credit_left_usd=Decimal(2)), False),
        (KeyLimits(requests_per_minute=1000), Standing(), False),
        (KeyLimits(tokens_per_minute=10**6), Standing(), False),
    ],
)
def test_a_key_is_far_from_its_limits_while_each_is_under_four_fifths_used(limits, standing, far):
    headroom, key = Headroom(), ApiKey("key_1", "acct", "ci", limits=limits)
    assert not headroom.far(key)  # never seen here: checked first
    headroom.note(key, standing)
    assert headroom.far(key) is far
    headroom.forget(key)  # refused
    assert not headroom.far(key)


def test_what_an_instance_saw_of_a_key_is_trusted_for_its_ttl_only():
    headroom, key = Headroom(ttl_s=0.0), ApiKey("key_1", "acct", "ci")
    headroom.note(key, Standing())
    assert not headroom.far(key)


BUDGET = Budget(Decimal(10), "weekly", "2026-11-20T08:00:00.000Z")


@pytest.mark.parametrize(
    ("member_spent", "far"),
    [(Decimal("7.99"), True), (Decimal(8), False), (None, False)],
)
def test_a_key_is_far_from_its_members_budget_while_under_four_fifths_of_it(member_spent, far):
    headroom = Headroom()
    key = ApiKey("key_1", "acct", "ci", member="ann@example.com", member_budget=BUDGET)
    headroom.note(key, Standing(member_spent_usd=member_spent))
    assert headroom.far(key) is far


def test_a_members_budget_is_checked_in_its_period_and_counted_when_the_request_settles():
    now = datetime(2026, 12, 2, 10, 0, 5, tzinfo=UTC)  # a Wednesday
    key = ApiKey("key_1", "acct", "ci", member="ann@example.com", member_budget=BUDGET)
    reservation = plan_reservation(key, now)
    assert reservation.checks_member and not reservation.checks_spend
    assert (reservation.member_period, reservation.member_next_reset) == ("2026-W49", datetime(2026, 12, 7, tzinfo=UTC))
    member = [delta for delta in counter_deltas(reservation, Decimal("0.25"), 30) if delta.pk.startswith("MEMBER#")]
    assert member == [
        CounterDelta(
            "MEMBER#acct#ann@example.com#2026-11-20T08:00:00.000Z",
            "SPEND#2026-W49",
            {"spent_usd": Decimal("0.25")},
            int(datetime(2026, 12, 14, tzinfo=UTC).timestamp()),
            copied=True,
        )
    ]
    # A key without a member, or a member without a budget, has no such counter
    for other in (ApiKey("key_2", "acct", "ci", member_budget=BUDGET), ApiKey("key_3", "acct", "ci", member="bo")):
        assert not plan_reservation(other, now).checks_member
        assert not [
            d for d in counter_deltas(plan_reservation(other, now), Decimal(1), 1) if d.pk.startswith("MEMBER#")
        ]
    # /v1/key shows it, with what the member's keys spent in the period
    status = key_status(key, {"member": {"spent_usd": Decimal("9.5")}}, now)
    assert status["member_budget"] == {
        "spend_limit_usd": "10",
        "spend_period": "weekly",
        "spent_usd": "9.5",
        "remaining_usd": "0.5",
        "next_reset": "2026-12-07T00:00:00.000Z",
    }
    assert key_status(ApiKey("key_2", "acct", "ci"), {}, now)["member_budget"] is None
