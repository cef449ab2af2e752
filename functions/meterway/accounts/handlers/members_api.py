"""``/api/members``: the people keys belong to. Disabling a member disables all their keys;
enabling the member again does not enable the keys (each is enabled with ``PATCH /api/keys/{id}``).
A member's budget caps what their keys spend together in a period (``manage_members``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

from meterway.accounts.handlers.api_context import admin_of, context_of
from meterway.accounts.logic.limits import period_window
from meterway.accounts.logic.manage_members import (
    budget_spent,
    create_member,
    find_member,
    list_members,
    patch_member,
    set_budget,
)
from meterway.accounts.logic.members import MEMBER_ID_PATTERN
from meterway.accounts.models import Member
from meterway.core.api_responses import JSON_BODY, api_responses
from meterway.core.clock import utc_iso, utc_now
from meterway.core.errors import Conflict, NotFound
from meterway.core.money import money
from meterway.core.request_models import MoneyAmount, RequestBody, omissible

router = APIGatewayRouter()


class BudgetOut(BaseModel):
    spend_limit_usd: str = Field(description="USD per period, exact decimal string")
    spend_period: str = Field(description="daily (00:00 UTC), weekly (Mondays), monthly (the 1st) or none (lifetime)")
    since: str = Field(description="When it was set: spend counts from the start of the period it was set in")
    spent_usd: str = Field(description="What the member's keys spent in the current period, as counted so far")
    remaining_usd: str
    next_reset: str | None = Field(description="When the next period starts; null for a lifetime budget")


class MemberOut(BaseModel):
    member_id: str
    name: str | None
    disabled: bool
    created_at: str
    budget: BudgetOut | None

    @classmethod
    def of(cls, member: Member, spent: Decimal | None = None, now: datetime | None = None) -> MemberOut:
        budget = None
        if member.budget is not None:
            used = spent or Decimal(0)
            reset = period_window(member.budget.spend_period, now or utc_now())[1]
            budget = BudgetOut(
                spend_limit_usd=money(member.budget.spend_limit_usd),
                spend_period=member.budget.spend_period,
                since=member.budget.since,
                spent_usd=money(used),
                remaining_usd=money(max(member.budget.spend_limit_usd - used, Decimal(0))),
                next_reset=utc_iso(reset) if reset else None,
            )
        return cls(
            member_id=member.member_id,
            name=member.name,
            disabled=member.disabled,
            created_at=member.created_at,
            budget=budget,
        )


class BudgetIn(RequestBody):
    spend_limit_usd: Annotated[Decimal, MoneyAmount(9, zero=True)] = Field(
        description="USD per period that all the member's keys may spend together"
    )
    spend_period: Literal["daily", "weekly", "monthly", "none"] = Field(
        default="monthly",
        description="When it starts again: 00:00 UTC daily, Mondays, the 1st; none is a lifetime budget",
    )


class MemberList(BaseModel):
    data: list[MemberOut]


class MemberCreate(RequestBody):
    member_id: str = Field(pattern=MEMBER_ID_PATTERN, description="e.g. an email; case-insensitive, stored lowercased")
    name: str | None = Field(default=None, min_length=1, max_length=200)


class MemberPatch(RequestBody):
    """Only the fields sent change. ``disabled: true`` disables every key of the member too;
    ``disabled: false`` enables the member only, not their keys."""

    name: str | None = Field(default=None, min_length=1, max_length=200, description="null clears the name")
    disabled: bool = omissible()
    budget: BudgetIn | None = Field(default=None, description="null removes the budget")

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set if name != "budget"}


@router.get("/api/members", summary="List the account's members", responses=api_responses())
def get_members() -> MemberList:
    deps = context_of(router)
    members, now = list_members(deps.members, admin_of(router).account_id), deps.clock()
    spent = budget_spent(deps.spend_counters, members, now)
    return MemberList(data=[MemberOut.of(member, spent.get(member.member_id), now) for member in members])


@router.post(
    "/api/members",
    summary="Add a member; keys can then be created for them",
    responses=api_responses(201, *JSON_BODY, Conflict),
)
def post_members(body: MemberCreate) -> Response[MemberOut]:
    deps = context_of(router)
    member = create_member(deps.members, admin_of(router).account_id, body.member_id, body.name, now=deps.clock())
    return Response(201, content_types.APPLICATION_JSON, MemberOut.of(member))


@router.patch(
    "/api/members/<member_id>",
    summary="Rename a member, set their budget, or disable them and all their keys",
    responses=api_responses(200, *JSON_BODY, NotFound, Conflict),
)
def patch_members(member_id: str, body: MemberPatch) -> MemberOut:
    deps, caller = context_of(router), admin_of(router)
    # A client may percent-encode the id's '@' or '+' in the path.
    member = find_member(deps.members, caller.account_id, unquote(member_id))
    now = deps.clock()
    updated = patch_member(deps.members, deps.key_admin, member, body.changes(), caller=caller, now=now)
    if "budget" in body.model_fields_set:
        wanted = (body.budget.spend_limit_usd, body.budget.spend_period) if body.budget else None
        updated = set_budget(deps.members, deps.key_admin, deps.spend_counters, deps.member_spend, updated, wanted, now)
    deps.keys.clear()
    return MemberOut.of(updated, budget_spent(deps.spend_counters, [updated], now).get(updated.member_id), now)
