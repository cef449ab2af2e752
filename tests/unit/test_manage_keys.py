"""Rules of key, member and credit management that need no storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meterway.accounts.dal.key_store import _current_only
from meterway.accounts.logic.balance import balance_of, check_amount
from meterway.accounts.logic.manage_keys import _retired_end, check_limits, expiry
from meterway.accounts.logic.members import normalize_member_id
from meterway.accounts.models import ApiKey, KeyLimits, KeyRecord, RetiredSecret
from meterway.core.errors import InvalidRequest
from meterway.core.money import money, optional_money
from meterway.proxy.logic.catalog import CATALOG

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_allowed_models_must_be_in_the_catalog_and_are_kept_once_in_order():
    limits = check_limits(
        KeyLimits(allowed_models=("openai/gpt-4o", "openai/gpt-4o-mini", "openai/gpt-4o")), models=CATALOG
    )
    assert limits.allowed_models == ("openai/gpt-4o", "openai/gpt-4o-mini")
    with pytest.raises(InvalidRequest, match="openai/gpt-7"):
        check_limits(KeyLimits(allowed_models=("openai/gpt-4o", "openai/gpt-7")), models=CATALOG)
    with pytest.raises(InvalidRequest, match="spend_limit_usd"):
        check_limits(KeyLimits(spend_limit_usd=Decimal("-0.01")), models=CATALOG)
    assert check_limits(None, models=CATALOG) == KeyLimits()


def test_an_expiry_must_be_in_the_future_and_naive_times_are_utc():
    assert expiry(datetime(2027, 1, 1), NOW) == "2027-01-01T00:00:00.000Z"
    assert expiry(None, NOW) is None
    for moment in (NOW, NOW - timedelta(seconds=1)):
        with pytest.raises(InvalidRequest):
            expiry(moment, NOW)


def test_a_rotated_out_secret_ends_at_its_overlap_or_the_keys_earlier_expiry():
    secret = RetiredSecret("h", "mw-live-abc", "2026-11-23T13:00:00.000Z", "2026-11-23T13:00:00.000Z")
    earlier, later = "2026-11-23T12:30:00.000Z", "2027-01-01T00:00:00.000Z"
    assert _retired_end(secret, {"valid_until": earlier}, earlier) == {"valid_until": earlier}
    assert _retired_end(secret, {"valid_until": later}, later) == {"valid_until": secret.retired_until}
    assert _retired_end(secret, {"valid_until": None}, None) == {"valid_until": secret.retired_until}
    assert _retired_end(secret, {"name": "x"}, None) == {}


def test_a_listing_shows_one_row_per_key_even_while_the_index_lags_a_rotation():
    key = ApiKey("key_1", "acct", "ci")
    stale = KeyRecord(key, "old")
    current = KeyRecord(key, "new", ("old",))
    assert _current_only([stale, current]) == [current]


@pytest.mark.parametrize("member_id", ["", " ", "a b", "a/b", "a#b", "a%40b", "(none)", "x" * 101, "tab\there"])
def test_bad_member_ids_are_refused(member_id):
    with pytest.raises(InvalidRequest):
        normalize_member_id(member_id)


def test_member_ids_are_case_insensitive():
    assert normalize_member_id(" Alice+CI@Example.com ") == "alice+ci@example.com"


def test_balance_is_null_until_credit_exists_and_exact_after():
    assert balance_of(None).balance_usd is None
    assert balance_of({"spent_usd": Decimal("3")}).balance_usd is None
    balance = balance_of({"credits_usd": Decimal("25.8"), "spent_usd": Decimal("0.000001")})
    assert money(balance.balance_usd) == "25.799999"
    assert money(Decimal("1E+3")) == "1000" and optional_money(None) is None


@pytest.mark.parametrize("amount", ["0", "-1", "1000000.01", "NaN", "Infinity", "0.00000000001"])
def test_bad_top_up_amounts_are_refused(amount):
    with pytest.raises(InvalidRequest):
        check_amount(Decimal(amount))
