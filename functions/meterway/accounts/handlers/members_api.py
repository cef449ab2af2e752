"""``/api/members``: the people keys belong to. Disabling a member disables all their keys;
enabling the member again does not enable the keys (each is enabled with ``PATCH /api/keys/{id}``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

from meterway.accounts.handlers.api_context import admin_of, context_of
from meterway.accounts.logic.manage_members import create_member, find_member, list_members, patch_member
from meterway.accounts.logic.members import MEMBER_ID_PATTERN
from meterway.accounts.models import Member
from meterway.core.api_responses import JSON_BODY, api_responses
from meterway.core.errors import Conflict, NotFound
from meterway.core.request_models import RequestBody, omissible

router = APIGatewayRouter()


class MemberOut(BaseModel):
    member_id: str
    name: str | None
    disabled: bool
    created_at: str

    @classmethod
    def of(cls, member: Member) -> MemberOut:
        return cls(member_id=member.member_id, name=member.name, disabled=member.disabled, created_at=member.created_at)


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

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


@router.get("/api/members", summary="List the account's members", responses=api_responses())
def get_members() -> MemberList:
    members = list_members(context_of(router).members, admin_of(router).account_id)
    return MemberList(data=[MemberOut.of(member) for member in members])


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
    summary="Rename a member, or disable them and all their keys",
    responses=api_responses(200, *JSON_BODY, NotFound, Conflict),
)
def patch_members(member_id: str, body: MemberPatch) -> MemberOut:
    deps, caller = context_of(router), admin_of(router)
    # A client may percent-encode the id's '@' or '+' in the path.
    member = find_member(deps.members, caller.account_id, unquote(member_id))
    updated = patch_member(deps.members, deps.key_admin, member, body.changes(), caller=caller, now=deps.clock())
    deps.keys.clear()
    return MemberOut.of(updated)
