"""Bodies, methods and cursors the management API does not take: each is a 4xx in the error
envelope, and nothing changes."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.gateway import LocalLambdaContext
from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.logic.manage_keys import create_key
from meterway.core.json_limits import MAX_JSON_DEPTH
from meterway.management_api import handler as api
from meterway.management_api.request_gate import MAX_BODY_BYTES
from tests.integration.conftest import call_api, load_event

ONCE = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def admin(module_aws_env):
    _, secret = create_key(DynamoKeyStore(module_aws_env["KeysTable"]), "acct", "ops", kind="admin")
    return secret


def raw_call(admin: str, method: str, path: str, body: str | None, content_type: str | None, *, b64: bool = False):
    event = copy.deepcopy(load_event("api_get_keys.json"))
    event |= {"httpMethod": method, "path": path, "body": body, "isBase64Encoded": b64}
    headers = {"Authorization": f"Bearer {admin}"} | ({"Content-Type": content_type} if content_type else {})
    for name, value in headers.items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    response: dict[str, Any] = api.handler(event, LocalLambdaContext("ApiFunction"))
    response["json"] = json.loads(response["body"]) if response.get("body") else None
    return response


def key_count(admin: str) -> int:
    return len(call_api("GET", "/api/keys", admin)["json"]["data"])


def nested(depth: int) -> str:
    return '{"name": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize(
    ("body", "content_type", "b64", "status", "code"),
    [
        ("name=x", "application/x-www-form-urlencoded", False, 415, "unsupported_media_type"),
        ('{"name": "x"}', "text/plain", False, 415, "unsupported_media_type"),
        ('{"name": "x"}', None, False, 415, "unsupported_media_type"),
        ('{"name": "x"}', "multipart/form-data; boundary=x", False, 415, "unsupported_media_type"),
        (base64.b64encode(b'{"name": "\xff\xfe"}').decode(), "application/json", True, 400, "invalid_json"),
        ('{"name": "x"', "application/json", False, 400, "invalid_json"),
        (json.dumps({"name": "x" * MAX_BODY_BYTES}), "application/json", False, 413, "request_too_large"),
        (nested(10_000), "application/json", False, 400, "invalid_json"),
    ],
    ids=["form", "text", "no content type", "multipart", "not utf-8", "malformed", "too large", "too deep"],
)
def test_a_body_the_api_does_not_take_is_refused_in_the_envelope(admin, body, content_type, b64, status, code):
    before = key_count(admin)
    response = raw_call(admin, "POST", "/api/keys", body, content_type, b64=b64)
    assert response["statusCode"] == status, response["body"]
    assert set(response["json"]["error"]) == {"message", "type", "code"}
    assert response["json"]["error"]["code"] == code
    assert key_count(admin) == before


@ONCE
@given(depth=st.integers(1, 5_000))
def test_nesting_past_the_limit_is_a_400_and_within_it_a_validation_answer(admin, depth):
    response = raw_call(admin, "POST", "/api/members", nested(depth), "application/json")
    assert response["statusCode"] == 400, response["body"]
    message = response["json"]["error"]["message"]
    assert ("levels deep" in message) == (depth + 1 > MAX_JSON_DEPTH)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", "/api/keys", "GET, POST"),
        ("PUT", "/api/keys/key_x", "GET, DELETE, PATCH"),
        ("GET", "/api/keys/key_x/rotate", "POST"),
    ],
)
def test_a_method_a_path_lacks_is_a_405_with_allow(admin, method, path, allow):
    response = call_api(method, path, admin)
    assert response["statusCode"] == 405
    assert response["json"]["error"]["code"] == "method_not_allowed"
    assert response["multiValueHeaders"]["Allow"] == [allow]


def test_an_unknown_path_is_still_a_404(admin):
    assert call_api("GET", "/api/nothing", admin)["statusCode"] == 404


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["account_id", "created_sk", "request_id", "key_id", "S", "N"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@ONCE
@given(value=json_values)
def test_a_forged_cursor_is_a_400(admin, value):
    cursor = base64.urlsafe_b64encode(json.dumps(value).encode()).decode()
    response = call_api("GET", "/api/usage/requests", admin, query={"cursor": cursor})
    assert response["statusCode"] == 400, response["body"]
    assert response["json"]["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    "cursor",
    [
        base64.urlsafe_b64encode(b"[" * 1400).decode(),
        base64.urlsafe_b64encode(
            json.dumps({"account_id": {"S": 1}, "created_sk": {"S": []}, "request_id": {"S": "r"}}).encode()
        ).decode(),
        base64.urlsafe_b64encode(
            json.dumps({"account_id": {"S": "acct"}, "created_sk": {"N": "1"}, "request_id": {"S": "r"}}).encode()
        ).decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "é",
    ],
)
def test_cursors_with_wrong_types_are_a_400(admin, cursor):
    response = call_api("GET", "/api/usage/requests", admin, query={"cursor": cursor})
    assert response["statusCode"] == 400, response["body"]
    assert response["json"]["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    ("method", "path", "query", "body"),
    [
        ("GET", "/api/usage", {"model": "openai/gpt-9-ultra"}, None),
        ("GET", "/api/usage/requests", {"model": "openai/gpt-9-ultra"}, None),
        ("POST", "/api/exports", None, {"kind": "requests", "model": "openai/gpt-9-ultra"}),
    ],
)
def test_an_unknown_model_filter_is_a_404_like_an_unknown_key(admin, method, path, query, body):
    response = call_api(method, path, admin, body, query=query)
    assert response["statusCode"] == 404, response["body"]
    assert response["json"]["error"]["code"] == "model_not_found"
