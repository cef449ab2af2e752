"""Bad input at every front door: a 4xx in the envelope of the format the client speaks, and nothing
reserved, recorded or sent upstream. Open-ended classes (nesting, numbers) are properties."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterway.proxy.handlers.http_io import MAX_JSON_DEPTH
from tests.proxy_harness import DOORS, Gateway, gateway

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def gw() -> Iterator[Gateway]:
    with gateway() as running:
        yield running


def error_of(path: str, response: Any) -> dict[str, Any]:
    """The error as the door's envelope carries it: Anthropic's on /v1/messages, OpenAI's elsewhere."""
    body = response.json()
    if path.startswith("/v1/messages"):
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
        return {"type": body["error"]["type"], "message": body["error"]["message"]}
    assert set(body["error"]) == {"message", "type", "code"}
    return dict(body["error"])


def refused(gw: Gateway, path: str, content: bytes | dict[str, Any], status: int = 400) -> dict[str, Any]:
    """Send, expect ``status`` in the door's envelope and nothing changed; the error."""
    response = gw.post(path, content)
    assert response.status_code == status, response.text
    assert gw.untouched()
    return error_of(path, response)


def nested(depth: int, kind: str) -> Any:
    """A value whose containers nest ``depth`` deep (0: a scalar)."""
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


@pytest.mark.parametrize("path", list(DOORS))
def test_a_body_nested_thousands_deep_is_a_400_not_a_crash(gw, path):
    deep = b'{"model": "x", "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    error = refused(gw, path, deep)
    assert "nests" in error["message"]


@PROPERTY
@given(depth=st.integers(min_value=1, max_value=3 * MAX_JSON_DEPTH), kind=st.sampled_from(["list", "dict"]))
def test_nesting_is_refused_exactly_past_the_limit(gw, depth, kind):
    # Given a chat request that carries a value nested `depth` deep (the body itself is one more level),
    # with brackets inside strings that must not count
    body = DOORS["/v1/chat/completions"] | {"metadata": {"note": "[[[{{{"}, "x_nested": nested(depth, kind)}
    response = gw.post("/v1/chat/completions", body)
    if depth + 1 > MAX_JSON_DEPTH:
        assert response.status_code == 400 and response.json()["error"]["code"] == "nesting_too_deep"
        assert gw.untouched()
    else:
        assert response.status_code == 200, response.text
    gw.forget()


NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" * 5000]


@pytest.mark.parametrize("path", list(DOORS))
@pytest.mark.parametrize("literal", NON_FINITE)
def test_a_number_json_cannot_carry_is_a_400_in_the_doors_envelope(gw, path, literal):
    text = json.dumps(DOORS[path])[:-1] + f', "temperature": {literal}}}'
    error = refused(gw, path, text.encode())
    assert "finite" in error["message"]
    if path != "/v1/messages":
        assert error["code"] == "invalid_number"


@PROPERTY
@given(
    number=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
        st.integers().map(str),
        st.from_regex(r"-?[1-9][0-9]{0,3}(\.[0-9]{1,3})?[eE][+-]?[0-9]{1,4}", fullmatch=True),
    ),
    field=st.sampled_from(["temperature", "top_p", "seed", "presence_penalty", "x_anything"]),
)
def test_any_number_anywhere_is_answered_never_a_5xx(gw, number, field):
    text = json.dumps(DOORS["/v1/chat/completions"])[:-1] + f', "{field}": {number}}}'
    response = gw.post("/v1/chat/completions", text.encode())
    finite = json.loads(number, parse_constant=lambda _: None) is not None and abs(float(number)) < float("inf")
    if finite:
        assert response.status_code < 500, response.text
    else:
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_number"
        assert gw.untouched()
    gw.forget()
