"""``/api/keys``: create, list, read, change, rotate and delete keys.

A secret is in the response that creates or rotates it, and nowhere else, ever.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

from meterway.accounts.handlers.api_context import admin_of, context_of
from meterway.accounts.logic.manage_keys import (
    DEFAULT_OVERLAP_SECONDS,
    MAX_OVERLAP_SECONDS,
    KeyView,
    create_key,
    delete_key,
    find_key,
    key_view,
    key_views,
    parse_expiry,
    patch_key,
    rotate_key,
)
from meterway.accounts.logic.members import MEMBER_ID_PATTERN
from meterway.accounts.models import ApiKey, KeyLimits
from meterway.core.api_responses import JSON_BODY, api_responses
from meterway.core.errors import Conflict, InvalidRequest, NotFound
from meterway.core.money import money, optional_money
from meterway.core.request_models import WHOLE, ClientTimeText, MoneyAmount, RequestBody, omissible

router = APIGatewayRouter()

KEY_PATH = "/api/keys/<key_id>"


class LimitsIn(RequestBody):
    """A key's limits; a field left out means no limit of that kind."""

    spend_limit_usd: Annotated[Decimal, MoneyAmount(9, zero=True)] | None = Field(
        default=None, description="USD per period, a decimal string or number"
    )
    spend_period: Literal["daily", "weekly", "monthly", "none"] = Field(
        default="none",
        description="When the spend limit starts again: 00:00 UTC daily, Mondays, the 1st; none is a lifetime budget",
    )
    requests_per_minute: Annotated[int, Field(ge=1, le=1_000_000_000), WHOLE] | None = None
    tokens_per_minute: Annotated[int, Field(ge=1, le=1_000_000_000_000), WHOLE] | None = None
    allowed_models: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=100, description="Catalog model ids; left out, every model"
    )

    def to_limits(self) -> KeyLimits:
        return KeyLimits(
            spend_limit_usd=self.spend_limit_usd,
            spend_period=self.spend_period,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            allowed_models=tuple(self.allowed_models) if self.allowed_models is not None else None,
        )


class LimitsOut(BaseModel):
    spend_limit_usd: str | None = Field(description="USD per period, exact decimal string; null: no limit")
    spend_period: str
    requests_per_minute: int | None
    tokens_per_minute: int | None
    allowed_models: list[str] | None = Field(description="null: every model")

    @classmethod
    def of(cls, limits: KeyLimits) -> LimitsOut:
        return cls(
            spend_limit_usd=optional_money(limits.spend_limit_usd),
            spend_period=limits.spend_period,
            requests_per_minute=limits.requests_per_minute,
            tokens_per_minute=limits.tokens_per_minute,
            allowed_models=list(limits.allowed_models) if limits.allowed_models is not None else None,
        )


class KeyOut(BaseModel):
    id: str
    name: str
    kind: str
    member: str | None
    prefix: str = Field(description="The start of the current secret, to recognise it")
    disabled: bool
    created_at: str
    valid_until: str | None = Field(description="When the key expires (UTC); null: never")
    limits: LimitsOut
    spend_to_date: str = Field(description="USD spent since the key was created, exact decimal string")
    spent_this_period: str | None = Field(
        default=None, description="For a key with a spend limit: USD spent in the current period, as counted so far"
    )
    last_used_at: str | None

    @classmethod
    def fields_of(cls, view: KeyView) -> dict[str, Any]:
        key: ApiKey = view.key
        return {
            "id": key.key_id,
            "name": key.name,
            "kind": key.kind,
            "member": key.member,
            "prefix": key.display_prefix,
            "disabled": key.disabled,
            "created_at": key.created_at,
            "valid_until": key.valid_until,
            "limits": LimitsOut.of(key.limits),
            "spend_to_date": money(view.spend_to_date),
            "spent_this_period": optional_money(view.spent_this_period),
            "last_used_at": view.last_used_at,
        }


class RotatingSecret(BaseModel):
    prefix: str | None = Field(description="The start of the old secret")
    valid_until: str = Field(description="When the old secret stops working (UTC)")


class KeyDetail(KeyOut):
    rotating: list[RotatingSecret] = Field(description="Rotated-out secrets that still work, soonest to end first")

    @classmethod
    def of(cls, view: KeyView) -> KeyDetail:
        rotating = [
            RotatingSecret(prefix=secret.display_prefix or None, valid_until=secret.valid_until)
            for secret in view.rotating or []
        ]
        return cls(**cls.fields_of(view), rotating=rotating)


class KeyCreated(KeyOut):
    secret: str = Field(description="The key's secret. Shown once, never stored: copy it now.")


class KeyRotated(KeyDetail):
    secret: str = Field(description="The new secret. Shown once, never stored: copy it now.")


class KeyList(BaseModel):
    data: list[KeyOut]


class KeyCreate(RequestBody):
    name: str = Field(min_length=1, max_length=100)
    member: str | None = Field(default=None, pattern=MEMBER_ID_PATTERN, description="An existing member's id")
    limits: LimitsIn | None = None
    valid_until: ClientTimeText | None = Field(
        default=None, description="Expiry, in the future; without an offset, UTC"
    )


class KeyPatch(RequestBody):
    """Only the fields sent change. ``limits`` replaces the key's whole limits object (null: no
    limits); ``valid_until`` null removes the expiry."""

    name: str = omissible(min_length=1, max_length=100)
    disabled: bool = omissible()
    limits: LimitsIn | None = None
    valid_until: ClientTimeText | None = None

    def changes(self) -> dict[str, Any]:
        changes = {name: getattr(self, name) for name in self.model_fields_set}
        if "limits" in changes:
            changes["limits"] = self.limits.to_limits() if self.limits is not None else None
        if "valid_until" in changes:
            changes["valid_until"] = parse_expiry(self.valid_until)
        return changes


class RotateRequest(RequestBody):
    overlap_seconds: Annotated[int, Field(ge=0, le=MAX_OVERLAP_SECONDS), WHOLE] = Field(
        default=DEFAULT_OVERLAP_SECONDS, description="How long the old secret keeps working; 0 stops it at once"
    )


@router.get(
    "/api/keys", summary="List the account's keys with their spend (never their secrets)", responses=api_responses()
)
def get_keys() -> KeyList:
    deps = context_of(router)
    views = key_views(deps.key_admin, deps.key_usage, admin_of(router).account_id, deps.clock(), deps.spend_counters)
    return KeyList(data=[KeyOut(**KeyOut.fields_of(view)) for view in views])


@router.post(
    "/api/keys",
    summary="Create an API key; its secret is in this response only",
    responses=api_responses(201, *JSON_BODY, NotFound),
)
def post_keys(body: KeyCreate) -> Response[KeyCreated]:
    deps = context_of(router)
    key, secret = create_key(
        deps.key_admin,
        admin_of(router).account_id,
        body.name,
        member=body.member,
        limits=body.limits.to_limits() if body.limits is not None else None,
        valid_until=parse_expiry(body.valid_until),
        now=deps.clock(),
        models=deps.models,
    )
    created = KeyCreated(**KeyOut.fields_of(KeyView(key, Decimal(0), None)), secret=secret)
    return Response(201, content_types.APPLICATION_JSON, created)


@router.get(
    KEY_PATH, summary="One key, with its rotated-out secrets that still work", responses=api_responses(200, NotFound)
)
def get_key(key_id: str) -> KeyDetail:
    deps = context_of(router)
    record = find_key(deps.key_admin, admin_of(router).account_id, key_id)
    return KeyDetail.of(key_view(deps.key_admin, deps.key_usage, record, deps.clock()))


@router.patch(
    KEY_PATH,
    summary="Change a key's name, disabled, limits (replaced whole) or expiry",
    responses=api_responses(200, *JSON_BODY, NotFound, Conflict),
)
def patch_keys(key_id: str, body: KeyPatch) -> KeyDetail:
    deps, caller = context_of(router), admin_of(router)
    now = deps.clock()
    record = find_key(deps.key_admin, caller.account_id, key_id)
    updated = patch_key(
        deps.key_admin, deps.members, record, body.changes(), caller=caller, now=now, models=deps.models
    )
    deps.keys.clear()
    return KeyDetail.of(key_view(deps.key_admin, deps.key_usage, updated, now))


@router.delete(
    KEY_PATH,
    summary="Delete a key: every secret of it stops working at once",
    responses=api_responses(204, InvalidRequest, NotFound, Conflict),
)
def delete_keys(key_id: str) -> Response[None]:
    deps, caller = context_of(router), admin_of(router)
    delete_key(deps.key_admin, find_key(deps.key_admin, caller.account_id, key_id), caller=caller)
    deps.keys.clear()
    return Response(204, None, None)


@router.post(
    KEY_PATH + "/rotate",
    summary="A new secret for the key; the old one works for overlap_seconds more",
    responses=api_responses(201, *JSON_BODY, NotFound, Conflict),
)
def post_rotate(key_id: str, body: Annotated[RotateRequest | None, Body()] = None) -> Response[KeyRotated]:
    deps = context_of(router)
    now = deps.clock()
    record = find_key(deps.key_admin, admin_of(router).account_id, key_id)
    rotated, secret = rotate_key(deps.key_admin, record, (body or RotateRequest()).overlap_seconds, now)
    deps.keys.clear()
    view = key_view(deps.key_admin, deps.key_usage, rotated, now)
    detail = KeyRotated(**KeyDetail.of(view).model_dump(), secret=secret)
    return Response(201, content_types.APPLICATION_JSON, detail)
