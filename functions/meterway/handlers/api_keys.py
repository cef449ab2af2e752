"""``/api/keys``: create and list keys. Secrets are returned once, at creation."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

from meterway.handlers import deps
from meterway.logic.keys import ApiKey
from meterway.logic.manage_keys import create_key, list_keys

router = APIGatewayRouter()


class KeyOut(BaseModel):
    id: str
    name: str
    kind: str
    member: str | None
    prefix: str
    disabled: bool
    created_at: str

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=key.key_id,
            name=key.name,
            kind=key.kind,
            member=key.member,
            prefix=key.display_prefix,
            disabled=key.disabled,
            created_at=key.created_at,
        )


class KeyCreated(KeyOut):
    secret: str = Field(description="The key's secret. Shown once, never stored: copy it now.")


class KeyList(BaseModel):
    data: list[KeyOut]


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    member: str | None = Field(default=None, min_length=1, max_length=100)


def admin() -> ApiKey:
    key: ApiKey = router.context["admin"]
    return key


@router.get("/api/keys", summary="List the account's keys (never their secrets)")
def get_keys() -> KeyList:
    return KeyList(data=[KeyOut.of(key) for key in list_keys(deps.key_store(), admin().account_id)])


@router.post("/api/keys", summary="Create an API key; its secret is in this response only")
def post_keys(body: KeyCreate) -> Response[KeyCreated]:
    key, secret = create_key(deps.key_store(), admin().account_id, body.name, member=body.member)
    created = KeyCreated(secret=secret, **KeyOut.of(key).model_dump())
    return Response(201, content_types.APPLICATION_JSON, created)
