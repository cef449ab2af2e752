"""An account's balance as shown: credits are the sum of its top-ups, whatever it spent before."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from meterway.accounts.logic.balance import account_balance


class Balances:
    """The BALANCE item and the top-ups, kept as the store keeps them: the first top-up sets
    ``credits_usd`` to what was spent plus its amount, each one adds 1 to ``version``.
    ``during_sum`` runs once, while the top-ups are being summed (a top-up made meanwhile)."""

    def __init__(self, spent: str = "0"):
        self.item: dict[str, Any] = {"spent_usd": Decimal(spent)}
        self.amounts: list[Decimal] = []
        self.during_sum: list[str] = []

    def get(self, account_id: str) -> dict[str, Any] | None:
        return dict(self.item)

    def topups(self, account_id: str, limit: int) -> list[dict[str, Any]]:
        return [{"amount_usd": amount} for amount in reversed(self.amounts)][:limit]

    def topped_up(self, account_id: str) -> Decimal:
        while self.during_sum:
            self.add_topup(account_id, {"amount_usd": Decimal(self.during_sum.pop())})
        return sum(self.amounts, Decimal(0))

    def add_topup(self, account_id: str, topup: dict[str, Any]) -> None:
        amount = topup["amount_usd"]
        credits = self.item.get("credits_usd", self.item["spent_usd"])
        self.item |= {"credits_usd": credits + amount, "version": self.item.get("version", 0) + 1}
        self.amounts.append(amount)


def test_spending_before_the_first_top_up_is_shown_apart_from_the_credits():
    store = Balances(spent="0.0000333")
    store.add_topup("acct", {"amount_usd": Decimal(5)})

    balance = account_balance(store, "acct")

    assert balance.topped_up_usd == Decimal(5)
    assert balance.balance_usd == Decimal(5)
    assert balance.spent_before_credit_usd == Decimal("0.0000333")
    assert balance.spent_usd == Decimal("0.0000333")


def test_a_top_up_made_while_the_sum_is_read_is_counted_in_both_or_neither():
    store = Balances(spent="2")
    store.add_topup("acct", {"amount_usd": Decimal(10)})
    store.during_sum.append("7.5")

    balance = account_balance(store, "acct")

    assert balance.topped_up_usd == Decimal("17.5")
    assert balance.balance_usd == Decimal("17.5")
    assert balance.spent_before_credit_usd == Decimal(2)


def test_without_credit_there_is_nothing_to_sum_and_no_limit():
    balance = account_balance(Balances(spent="3"), "acct")

    assert (balance.topped_up_usd, balance.balance_usd, balance.spent_before_credit_usd) == (0, None, 0)
