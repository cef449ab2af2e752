"""``/api/usage``, ``/api/usage/requests``, ``/api/activity`` and ``/api/dashboard``.

Totals and charts come from the rollups; only the request log and the dashboard's recent
activity read ledger records, one page at a time. All times are UTC.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BeforeValidator

from meterway.accounts.handlers.api_context import admin_of
from meterway.accounts.logic.balance import balance_usd
from meterway.accounts.logic.manage_keys import key_filter
from meterway.analytics.handlers.api_context import context_of
from meterway.analytics.handlers.api_models import ActivityResponse, DashboardResponse, RequestLog, UsageResponse
from meterway.analytics.logic import reports
from meterway.analytics.logic.model_filter import model_filter
from meterway.analytics.logic.request_log import request_page
from meterway.analytics.logic.windows import parse_window
from meterway.analytics.models import GroupBy
from meterway.core.api_responses import api_responses
from meterway.core.clock import CLIENT_TIME_PATTERN
from meterway.core.errors import InvalidRequest, NotFound
from meterway.core.money import optional_money
from meterway.core.request_models import whole_number
from meterway.ledger.attribution import NAME_LIMIT
from meterway.ledger.dal.ledger_store import LedgerQuery

router = APIGatewayRouter()

Start = Annotated[
    str | None,
    Query(pattern=CLIENT_TIME_PATTERN, description="A date (whole day) or ISO datetime, UTC; default 30 days ago"),
]
End = Annotated[
    str | None,
    Query(
        pattern=CLIENT_TIME_PATTERN,
        description="A date (inclusive, whole day) or ISO datetime (exclusive); default now",
    ),
]
ModelFilter = Annotated[
    str | None, Query(min_length=1, max_length=200, description="A model id, e.g. openai/gpt-4o-mini")
]
KeyFilter = Annotated[str | None, Query(min_length=1, max_length=64, description="A key id of this account")]
UserFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=NAME_LIMIT,
        description="An end user as the client named it (OpenAI's user, Anthropic's metadata.user_id); "
        "(none): requests that named none",
    ),
]
AppFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=NAME_LIMIT,
        description="An app as its X-Title (or X-Meterway-App) header named it; (none): requests that named none",
    ),
]
RECENT = 10


@router.get(
    "/api/usage",
    summary="Totals and per-model usage for a window",
    responses=api_responses(200, InvalidRequest, NotFound),
)
def get_usage(
    start: Start = None,
    end: End = None,
    model: ModelFilter = None,
    key: KeyFilter = None,
    user: UserFilter = None,
    app: AppFilter = None,
) -> UsageResponse:
    deps, account = context_of(router), admin_of(router).account_id
    window = parse_window(start, end, deps.clock())
    key_id = key_filter(deps.key_admin, account, key)
    model = model_filter(deps.models, deps.rollups, account, model)
    return UsageResponse.model_validate(
        reports.usage_summary(deps.rollups, account, window, model=model, key_id=key_id, user=user, app=app)
    )


@router.get(
    "/api/usage/requests",
    summary="The request log of a window, newest first",
    responses=api_responses(200, InvalidRequest, NotFound),
)
def get_requests(
    start: Start = None,
    end: End = None,
    model: ModelFilter = None,
    key: KeyFilter = None,
    user: UserFilter = None,
    app: AppFilter = None,
    status: Annotated[
        Literal["ok", "partial", "error"] | None,
        Query(description="Only requests of this status: ok (served), partial (cut short) or error (failed)"),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
    # Powertools drops ge/le from the document when a validator comes with them: stated again.
    limit: Annotated[
        int, BeforeValidator(whole_number), Query(ge=1, le=200, json_schema_extra={"minimum": 1, "maximum": 200})
    ] = 50,
) -> RequestLog:
    deps, account = context_of(router), admin_of(router).account_id
    window = parse_window(start, end, deps.clock())
    key_id = key_filter(deps.key_admin, account, key)
    model = model_filter(deps.models, deps.rollups, account, model)
    query = LedgerQuery(
        account, window.start_iso, window.end_iso, key_id=key_id, model=model, status=status, user=user, app=app
    )
    return RequestLog.model_validate(request_page(deps.ledger, query, limit, cursor))


@router.get(
    "/api/activity",
    summary="Spend, tokens and requests per bucket and group",
    responses=api_responses(200, InvalidRequest),
)
def get_activity(
    period: Annotated[
        Literal["1h", "1d", "1mo", "1y"], Query(description="1h: minutes, 1d: hours, 1mo: days, 1y: months")
    ] = "1d",
    group_by: Annotated[GroupBy, Query()] = "model",
) -> ActivityResponse:
    deps, account = context_of(router), admin_of(router).account_id
    names = {key.key_id: key.name for key in deps.keys.list_keys(account)} if group_by == "key" else {}
    result = reports.activity(deps.rollups, account, period, group_by, deps.clock(), names)
    return ActivityResponse.model_validate(result)


@router.get("/api/dashboard", summary="Trends, top models and recent activity", responses=api_responses())
def get_dashboard() -> DashboardResponse:
    deps, account = context_of(router), admin_of(router).account_id
    now = deps.clock()
    window = parse_window(None, None, now)
    recent = request_page(deps.ledger, LedgerQuery(account, window.start_iso, window.end_iso), RECENT, None)["data"]
    balance = optional_money(balance_usd(deps.balance, account))
    result = reports.dashboard(deps.rollups, account, now, recent, balance)
    return DashboardResponse.model_validate(result)
