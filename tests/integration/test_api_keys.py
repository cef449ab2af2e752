"""The management API handler, driven by API Gateway events as in AWS."""

from __future__ import annotations

import json

import boto3
import pytest

from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.logic.manage_keys import create_key
from meterway.core.container import container
from tests.integration.conftest import call_api


@pytest.fixture
def admin(aws_env):
    container.reset()
    store = DynamoKeyStore(aws_env["KeysTable"])
    _, admin_secret = create_key(store, "acct", "ops", kind="admin")
    _, api_secret = create_key(store, "acct", "ci")
    yield {"admin": admin_secret, "api": api_secret, "table": aws_env["KeysTable"]}
    container.reset()


def call(method: str, path: str, secret: str | None, body: dict | None = None) -> dict:
    return call_api(method, path, secret, body)


def test_an_admin_creates_a_key_whose_secret_is_shown_once_and_stored_never(admin):
    assert call("POST", "/api/members", admin["admin"], {"member_id": "bob@example.com"})["statusCode"] == 201
    created = call("POST", "/api/keys", admin["admin"], {"name": "staging", "member": "bob@example.com"})
    assert created["statusCode"] == 201
    secret = created["json"]["secret"]
    assert secret.startswith("mw-live-")

    listed = call("GET", "/api/keys", admin["admin"])
    assert listed["statusCode"] == 200
    names = {key["name"]: key for key in listed["json"]["data"]}
    assert names["staging"]["member"] == "bob@example.com"
    assert "secret" not in names["staging"]
    assert secret not in listed["body"]
    table_dump = json.dumps(boto3.client("dynamodb").scan(TableName=admin["table"])["Items"])
    assert secret not in table_dump
    assert admin["admin"] not in table_dump


@pytest.mark.parametrize(("who", "status"), [(None, 401), ("mw-admin-wrong", 401), ("api", 403)])
def test_only_admin_keys_reach_the_management_api(admin, who, status):
    secret = admin.get(who, who)
    response = call("GET", "/api/keys", secret)
    assert response["statusCode"] == status
    assert set(response["json"]["error"]) == {"message", "type", "code"}


@pytest.mark.parametrize(
    "sent",
    [
        {"Authorization": ["Bearer {admin}", "Bearer {api}"]},
        {"Authorization": ["Bearer {api}", "Bearer {admin}"]},
        {"Authorization": ["Bearer {admin}", "Bearer {admin}"]},
        {"Authorization": "Bearer {admin}", "x-api-key": "{api}"},
        {"x-api-key": ["{admin}", "{admin}"]},
    ],
)
def test_a_request_with_two_credentials_is_a_401_on_the_management_api(admin, sent):
    # Given an event whose multiValueHeaders repeat a credential (its headers keep the last one)
    headers = {
        name: value.format(**admin) if isinstance(value, str) else [v.format(**admin) for v in value]
        for name, value in sent.items()
    }
    response = call_api("GET", "/api/keys", None, headers=headers)
    assert response["statusCode"] == 401
    assert response["json"]["error"]["code"] == "ambiguous_api_key"


def test_the_same_admin_key_in_both_headers_is_accepted(admin):
    sent = {"Authorization": f"Bearer {admin['admin']}", "x-api-key": admin["admin"]}
    assert call_api("GET", "/api/keys", None, headers=sent)["statusCode"] == 200


def test_bad_input_is_a_400_in_the_envelope_and_creates_nothing(admin):
    before = len(call("GET", "/api/keys", admin["admin"])["json"]["data"])
    response = call("POST", "/api/keys", admin["admin"], {"name": ""})
    assert response["statusCode"] == 400
    assert "name" in response["json"]["error"]["message"]
    assert len(call("GET", "/api/keys", admin["admin"])["json"]["data"]) == before


def test_the_openapi_document_describes_the_keys_api(admin):
    response = call("GET", "/api/openapi.json", None)
    assert response["statusCode"] == 200
    assert "/api/keys" in response["json"]["paths"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"disabled": "yes"}, "invalid_request"),
        ({"disabled": 1}, "invalid_request"),
        ({"limits": {"requests_per_minute": "10"}}, "invalid_request"),
        ({"limits": {"requests_per_minute": 10.5}}, "invalid_request"),
        ({"limits": {"requests_per_minute": True}}, "invalid_request"),
        ({"valid_until": "9999-12-31T23:00:00-05:00"}, "invalid_valid_until"),
        ({"valid_until": 1893456000}, "invalid_valid_until"),
        ({"valid_until": "2030-02-30"}, "invalid_valid_until"),
    ],
)
def test_loose_values_are_refused_and_change_nothing(admin, body, code):
    created = call("POST", "/api/keys", admin["admin"], {"name": "loose"})["json"]
    response = call("PATCH", f"/api/keys/{created['id']}", admin["admin"], body)
    assert response["statusCode"] == 400, response["body"]
    assert response["json"]["error"]["code"] == code
    after = call("GET", f"/api/keys/{created['id']}", admin["admin"])["json"]
    assert (after["disabled"], after["limits"], after["valid_until"]) == (False, created["limits"], None)
