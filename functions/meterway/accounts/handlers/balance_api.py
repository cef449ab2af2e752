"""``/api/balance``: the account's prepaid credit, and top-ups. Credit is opt-in: until the
first top-up an account has no credit limit and its balance is null."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

from meterway.accounts.handlers.api_context import admin_of, context_of
from meterway.accounts.logic.balance import MAX_TOPUP_USD, Balance, account_balance, top_up
from meterway.core.api_responses import JSON_BODY, api_responses
from meterway.core.money import money, optional_money
from meterway.core.request_models import MoneyAmount, RequestBody

router = APIGatewayRouter()


class TopUpOut(BaseModel):
    id: str
    amount_usd: str
    note: str | None
    created_by: str = Field(description="The admin key that added it")
    created_at: str


class BalanceOut(BaseModel):
    credits_usd: str = Field(description="Sum of all top-ups (USD, exact decimal string)")
    spent_usd: str = Field(description="Cost of every request so far")
    spent_before_credit_usd: str = Field(
        description="What was spent before the first top-up: the credit does not pay for it"
    )
    balance_usd: str | None = Field(
        description="credits - (spent - spent before credit); null while no credit was ever added (no limit)"
    )
    topups: list[TopUpOut] = Field(description="The last 50 top-ups, newest first")

    @classmethod
    def of(cls, balance: Balance) -> BalanceOut:
        return cls(
            credits_usd=money(balance.topped_up_usd),
            spent_usd=money(balance.spent_usd),
            spent_before_credit_usd=money(balance.spent_before_credit_usd),
            balance_usd=optional_money(balance.balance_usd),
            topups=[
                TopUpOut(
                    id=topup["topup_id"],
                    amount_usd=money(topup["amount_usd"]),
                    note=topup.get("note"),
                    created_by=topup["created_by"],
                    created_at=topup["created_at"],
                )
                for topup in balance.topups
            ],
        )


class TopUpCreate(RequestBody):
    # Up to MAX_TOPUP_USD, a power of ten.
    amount_usd: Annotated[Decimal, MoneyAmount(MAX_TOPUP_USD.adjusted(), zero=False)] = Field(
        description="USD to add, a decimal string or number"
    )
    note: str | None = Field(default=None, max_length=500)


@router.get("/api/balance", summary="Credits, spend, balance and the latest top-ups", responses=api_responses())
def get_balance() -> BalanceOut:
    return BalanceOut.of(account_balance(context_of(router).balance, admin_of(router).account_id))


@router.post(
    "/api/balance/topups",
    summary="Add prepaid credit; the first top-up turns the credit limit on",
    responses=api_responses(201, *JSON_BODY),
)
def post_topup(body: TopUpCreate) -> Response[BalanceOut]:
    deps, caller = context_of(router), admin_of(router)
    balance = top_up(
        deps.balance, caller.account_id, body.amount_usd, note=body.note, created_by=caller.key_id, now=deps.clock()
    )
    return Response(201, content_types.APPLICATION_JSON, BalanceOut.of(balance))
