"""How far over its spend limit a key can go, with the moments the aggregator counts chosen (on moto).

A request is admitted while the *counted* spend is under the limit; its record is settled with one
put, and the aggregator adds its cost to the counter from the ledger's stream. So a request holds
is in flight from its reservation until its record is counted, and the spend over the limit is
bounded by the costs of the requests in flight, in that sense, when the counted spend reached it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.dal.quota_store import DynamoQuotaStore
from meterway.accounts.logic.key_secrets import hash_secret, mint_key
from meterway.accounts.logic.limits import reserve
from meterway.accounts.models import KeyLimits, Reservation
from meterway.core.errors import QuotaExceeded
from meterway.ledger.dal.ledger_store import DynamoLedgerStore
from meterway.ledger.logic.record_usage import new_request_id, settle
from meterway.ledger.models import TokenUsage, UsageRecord
from tests.integration.conftest import LoopbackDynamo, count_ledger

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
LIMIT, COST = Decimal("1.00"), Decimal("0.30")


class Key:
    """A key with a $1 spend limit, whose requests each cost $0.30."""

    def __init__(self, aws_env: dict[str, str], dynamo: LoopbackDynamo):
        self.env = aws_env
        self.dynamo = dynamo
        self.key, secret = mint_key("acct", "bounded", limits=KeyLimits(spend_limit_usd=LIMIT))
        self.hash = hash_secret(secret)
        DynamoKeyStore(aws_env["KeysTable"]).put(self.key, self.hash)
        self.quotas = DynamoQuotaStore(aws_env["KeysTable"], dynamo=dynamo.client)
        self.ledger = DynamoLedgerStore(aws_env["LedgerTable"], dynamo=dynamo.client)
        self.seconds = 0

    def reserve(self) -> Reservation:
        self.seconds += 1
        return self.dynamo.run(reserve(self.quotas, self.key, self.hash, NOW + timedelta(seconds=self.seconds)))[0]

    def settle(self, reservation: Reservation) -> None:
        record = UsageRecord(
            new_request_id(), NOW, self.key, "openai/gpt-4o-mini", "openai", "chat.completions", False,
            tokens=TokenUsage(input_tokens=100, output_tokens=10), cost_usd=COST,
        )  # fmt: skip
        assert self.dynamo.run(settle(record, reservation, self.ledger, None, 0)) == "written"

    def count(self) -> None:
        count_ledger(self.env)

    def counted(self) -> Decimal:
        return self.quotas.counters(Reservation(self.key, spend_period="ALL"))["spend"].get("spent_usd", Decimal(0))


@pytest.fixture
def key(aws_env, dynamo) -> Key:
    return Key(aws_env, dynamo)


def test_requests_admitted_before_the_counting_caught_up_are_the_overspend_and_no_more(key):
    # Three requests run and end; their records wait to be counted, and a fourth is admitted meanwhile
    first = [key.reserve() for _ in range(3)]
    for reservation in first:
        key.settle(reservation)
    fourth = key.reserve()
    # The counting catches up with the first three: $0.90 counted, under the limit, so a fifth starts
    key.count()
    assert key.counted() == Decimal("0.90")
    fifth = key.reserve()
    # In flight (reserved, not yet counted) when the counted spend reaches the limit: the fourth and the fifth
    key.settle(fourth)
    key.settle(fifth)
    key.count()

    assert key.counted() == Decimal("1.50")
    with pytest.raises(QuotaExceeded):
        key.reserve()
    # The spend over the limit is within what those two in flight cost
    assert key.counted() - LIMIT <= 2 * COST


def test_counted_promptly_the_overspend_is_the_requests_running_at_once(key):
    # Requests run two at a time, and each is counted as soon as it ends
    admitted, refused = 0, False
    while not refused:
        running = []
        try:
            running += [key.reserve(), key.reserve()]
        except QuotaExceeded:
            refused = True
        for reservation in running:
            key.settle(reservation)
            key.count()
            admitted += 1

    spent = key.counted()
    assert spent == admitted * COST >= LIMIT
    assert spent - LIMIT < 2 * COST  # at most the two that ran together went over
