"""Bad input gets the right status in the OpenAI error envelope and writes no ledger item."""

from __future__ import annotations

import json

import httpx
import pytest

pytestmark = pytest.mark.e2e

GOOD = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def post(stack, content: bytes, key: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json", "authorization": f"Bearer {key or stack.api_key}"}
    return httpx.post(f"{stack.base}/v1/chat/completions", content=content, headers=headers, timeout=30)


@pytest.mark.parametrize(
    ("name", "content", "status", "code"),
    [
        ("malformed JSON", b'{"model": "openai/gpt-4o-mini", "messages": [', 400, "invalid_json"),
        (
            "no messages",
            json.dumps({"model": "openai/gpt-4o-mini", "messages": []}).encode(),
            400,
            "invalid_parameters",
        ),
        ("unknown model", json.dumps({**GOOD, "model": "openai/gpt-9-ultra"}).encode(), 404, "model_not_found"),
        ("api_base in body", json.dumps({**GOOD, "api_base": "http://evil.example"}).encode(), 400, "forbidden_field"),
        ("not an object", b"[1, 2]", 400, "invalid_request"),
        (
            "nested 100k deep",
            json.dumps(GOOD)[:-1].encode() + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            400,
            "nesting_too_deep",
        ),
        ("NaN", json.dumps(GOOD)[:-1].encode() + b', "temperature": NaN}', 400, "invalid_number"),
        ("Infinity", json.dumps(GOOD)[:-1].encode() + b', "temperature": -Infinity}', 400, "invalid_number"),
        ("past a double", json.dumps(GOOD)[:-1].encode() + b', "temperature": 1e999}', 400, "invalid_number"),
        ("stream as a string", json.dumps({**GOOD, "stream": "yes"}).encode(), 400, "invalid_parameters"),
        ("max_tokens as a string", json.dumps({**GOOD, "max_tokens": "12"}).encode(), 400, "invalid_parameters"),
        ("max_tokens 1e30", json.dumps(GOOD)[:-1].encode() + b', "max_tokens": 1e30}', 400, "invalid_parameters"),
        (
            "max_tokens past the model's limit",
            json.dumps({**GOOD, "max_tokens": 16_385}).encode(),
            400,
            "max_tokens_too_large",
        ),
        (
            "body over 6 MB",
            json.dumps({**GOOD, "messages": [{"role": "user", "content": "x" * (6 * 1024 * 1024 + 10)}]}).encode(),
            413,
            "request_too_large",
        ),
    ],
)
def test_bad_requests_are_refused_and_not_recorded(stack, name, content, status, code):
    before = (stack.ledger_count(), len(stack.fake_requests()))
    response = post(stack, content)
    assert response.status_code == status, name
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert (stack.ledger_count(), len(stack.fake_requests())) == before


@pytest.mark.parametrize("key", ["mw-live-not-a-real-key", ""])
def test_a_bad_key_is_401_and_not_recorded(stack, key):
    before = stack.ledger_count()
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(f"{stack.base}/v1/chat/completions", json=GOOD, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert stack.ledger_count() == before


def test_the_admin_key_cannot_call_the_inference_api(stack):
    response = post(stack, json.dumps(GOOD).encode(), key=stack.info["admin_key"])
    assert response.status_code == 403


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/chat/completions"), ("GET", "/api/keys")])
def test_one_request_carrying_two_keys_is_a_401_on_both_apis(stack, method, path):
    # Given the API key first and the admin key last: a first-wins reader takes one, a last-wins the other
    api_key, admin_key = stack.api_key, stack.info["admin_key"]
    before = (stack.ledger_count(), len(stack.fake_requests()))
    headers = [("authorization", f"Bearer {api_key}"), ("authorization", f"Bearer {admin_key}")]
    response = httpx.request(method, f"{stack.base}{path}", json=GOOD, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "ambiguous_api_key"
    assert (stack.ledger_count(), len(stack.fake_requests())) == before
