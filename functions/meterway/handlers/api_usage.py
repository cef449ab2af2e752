"""``/api/usage``, ``/api/usage/requests``, ``/api/activity`` and ``/api/dashboard``.

Totals and charts come from the rollups; only the request log and the dashboard's recent
activity read ledger records, one page at a time. All times are UTC.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from meterway.api_models import ActivityResponse, DashboardResponse, RequestLog, UsageResponse
from meterway.dal.ledger_store import LedgerQuery
from meterway.errors import NotFound
from meterway.handlers import deps
from meterway.logic import analytics
from meterway.logic.balance import balance_usd, money
from meterway.logic.keys import ApiKey
from meterway.logic.request_log import entry, request_page
from meterway.logic.windows import parse_window

router = APIGatewayRouter()

Start = Annotated[
    str | None, Query(max_length=40, description="A date (whole day) or ISO datetime, UTC; default 30 days ago")
]
End = Annotated[
    str | None,
    Query(max_length=40, description="A date (inclusive, whole day) or ISO datetime (exclusive); default now"),
]
ModelFilter = Annotated[
    str | None, Query(min_length=1, max_length=200, description="A model id, e.g. openai/gpt-4o-mini")
]
KeyFilter = Annotated[str | None, Query(min_length=1, max_length=64, description="A key id of this account")]
RECENT = 10


def admin() -> ApiKey:
    key: ApiKey = router.context["admin"]
    return key


def checked_key(account_id: str, key_id: str | None) -> str | None:
    """A key filter must name a key of the caller's account: anything else is a 404."""
    if key_id is not None and deps.key_store().get_key(account_id, key_id) is None:
        raise NotFound(f"No key '{key_id}' in this account.", code="key_not_found")
    return key_id


@router.get("/api/usage", summary="Totals and per-model usage for a window")
def get_usage(start: Start = None, end: End = None, model: ModelFilter = None, key: KeyFilter = None) -> UsageResponse:
    account = admin().account_id
    window = parse_window(start, end, deps.now())
    result = analytics.usage(deps.rollup_store(), account, window, model=model, key_id=checked_key(account, key))
    return UsageResponse.model_validate(result)


@router.get("/api/usage/requests", summary="The request log of a window, newest first")
def get_requests(
    start: Start = None,
    end: End = None,
    model: ModelFilter = None,
    key: KeyFilter = None,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RequestLog:
    account = admin().account_id
    window = parse_window(start, end, deps.now())
    query = LedgerQuery(account, window.start_iso, window.end_iso, key_id=checked_key(account, key), model=model)
    return RequestLog.model_validate(request_page(deps.ledger_store(), query, limit, cursor))


@router.get("/api/activity", summary="Spend, tokens and requests per bucket and group")
def get_activity(
    period: Annotated[
        Literal["1h", "1d", "1mo", "1y"], Query(description="1h: minutes, 1d: hours, 1mo: days, 1y: months")
    ] = "1d",
    group_by: Annotated[Literal["model", "key", "member"], Query()] = "model",
) -> ActivityResponse:
    account = admin().account_id
    names = {key.key_id: key.name for key in deps.key_store().list_keys(account)} if group_by == "key" else {}
    result = analytics.activity(deps.rollup_store(), account, period, group_by, deps.now(), names)
    return ActivityResponse.model_validate(result)


@router.get("/api/dashboard", summary="Trends, top models and recent activity")
def get_dashboard() -> DashboardResponse:
    account = admin().account_id
    now = deps.now()
    window = parse_window(None, None, now)
    items, _ = deps.ledger_store().page(LedgerQuery(account, window.start_iso, window.end_iso), RECENT)
    balance = money(balance_usd(deps.balance_store(), account))
    result = analytics.dashboard(deps.rollup_store(), account, now, [entry(item) for item in items], balance)
    return DashboardResponse.model_validate(result)
