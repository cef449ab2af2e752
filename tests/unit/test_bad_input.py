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
from meterway.proxy.logic.catalog import CATALOG
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


LOOSE = [
    # (door, field, value): each a type or range the door's model refuses
    *[("/v1/chat/completions", "stream", value) for value in ("yes", "true", 1, None)],
    *[("/v1/chat/completions", "max_tokens", value) for value in ("12", 12.0, 1e30, 10**30, 0, -1, True)],
    ("/v1/chat/completions", "max_completion_tokens", "64"),
    *[("/v1/chat/completions", "n", value) for value in ("2", 0, 129, 2.0)],
    *[("/v1/chat/completions", "top_logprobs", value) for value in ("1", 21, -1)],
    ("/v1/chat/completions", "logprobs", "true"),
    ("/v1/chat/completions", "parallel_tool_calls", "false"),
    ("/v1/chat/completions", "store", 0),
    *[("/v1/chat/completions", "seed", value) for value in ("1", 2**64, 1.5)],
    ("/v1/chat/completions", "stream_options", "include_usage"),
    ("/v1/chat/completions", "metadata", "not an object"),
    *[("/v1/messages", "stream", value) for value in ("yes", 1)],
    *[("/v1/messages", "max_tokens", value) for value in ("12", 12.5, 1e30, 0, False)],
    ("/v1/messages", "top_k", -1),
    *[("/v1/responses", "stream", value) for value in ("true", 1)],
    *[("/v1/responses", "max_output_tokens", value) for value in ("5", 1e30, 0)],
    ("/v1/responses", "store", "false"),
    ("/v1/responses", "parallel_tool_calls", 1),
    ("/v1/responses", "background", "no"),
    ("/v1/responses", "top_logprobs", 21),
    ("/v1/responses", "max_tool_calls", 0),
    ("/v1/responses", "metadata", ["not", "an", "object"]),
    *[("/v1/embeddings", "dimensions", value) for value in ("256", 0, 256.0)],
    *[("/v1/embeddings", "input", value) for value in (3, None, [1, "a"], [True], [[1], "a"], [[1.5]])],
]


@pytest.mark.parametrize(("path", "field", "value"), LOOSE)
def test_a_loose_boolean_or_integer_is_a_400_that_names_the_field(gw, path, field, value):
    error = refused(gw, path, DOORS[path] | {field: value})
    assert f"'{field}'" in error["message"]
    if path != "/v1/messages":
        assert error["code"] == "invalid_parameters"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/messages", "max_tokens"),
        ("/v1/responses", "input"),
        ("/v1/chat/completions", "messages"),
        ("/v1/embeddings", "model"),
    ],
)
def test_a_missing_required_field_is_a_400_that_names_it(gw, path, field):
    body = {name: value for name, value in DOORS[path].items() if name != field}
    error = refused(gw, path, body)
    assert f"'{field}'" in error["message"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
def test_strict_values_of_the_right_type_still_pass(gw, path):
    body = DOORS[path] | {"stream": False, "store": False, "parallel_tool_calls": True, "top_logprobs": 0}
    assert gw.post(path, body).status_code == 200


OUTPUT_FIELDS = {
    "/v1/chat/completions": "max_tokens",
    "/v1/messages": "max_tokens",
    "/v1/responses": "max_output_tokens",
}
CHAT_MODELS = [route for route in CATALOG.values() if route.endpoint == "chat"]


@PROPERTY
@given(
    path=st.sampled_from(list(OUTPUT_FIELDS)),
    route=st.sampled_from(CHAT_MODELS),
    asked=st.integers(min_value=1, max_value=150_000),
)
def test_an_output_budget_is_bounded_by_the_models_own_limit(gw, path, route, asked):
    # Given any chat model of the catalog, through any door (natively or translated)
    assert route.max_output_tokens is not None
    body = DOORS[path] | {"model": route.id, OUTPUT_FIELDS[path]: asked, "stream": False}
    response = gw.post(path, body)
    if asked > route.max_output_tokens:
        # Then more than it can write is refused by the gateway, naming the limit
        assert response.status_code == 400 and gw.untouched()
        assert str(route.max_output_tokens) in error_of(path, response)["message"]
    else:
        # Else the request reaches the provider
        assert gw.upstream_requests, response.text
    gw.forget()


@pytest.mark.parametrize("path", [*DOORS, "/v1/messages/count_tokens"])
@pytest.mark.parametrize(
    "second", [("authorization", "Bearer {other}"), ("x-api-key", "{other}"), ("authorization", "Bearer {mine}")]
)
def test_two_credentials_in_one_request_are_a_401_at_every_door(gw, path, second):
    # Given the caller's own key and a second credential (another key, or the same header twice)
    other = "mw-live-" + "x" * 40
    name, value = second
    headers = [("authorization", f"Bearer {gw.secret}"), (name, value.format(other=other, mine=gw.secret))]
    response = gw.client.post(path, json=DOORS.get(path, DOORS["/v1/messages"]), headers=headers)
    assert response.status_code == 401
    assert "one API key" in error_of(path, response)["message"]
    assert gw.untouched()


# Fields the doors, their pass-throughs and translations read, beyond those their models type.
READ_FIELDS = [
    *("messages", "input", "tools", "tool_choice", "temperature", "top_p", "stop", "stop_sequences", "system"),
    *("response_format", "reasoning_effort", "reasoning", "thinking", "instructions", "text", "include"),
    *("output_config", "logit_bias", "modalities", "prediction", "audio", "cache_control", "container"),
    *("mcp_servers", "truncation", "encoding_format", "user", "metadata", "stream_options", "n", "max_tokens"),
]
TRANSLATED = [
    ("/v1/chat/completions", "anthropic/claude-haiku-4-5"),
    ("/v1/messages", "openai/gpt-4o-mini"),
    ("/v1/responses", "anthropic/claude-haiku-4-5"),
    # Bedrock: Claude's InvokeModel body, and a model spoken to in Converse
    ("/v1/messages", "bedrock/us.anthropic.claude-haiku-4-5-20251001-v1:0"),
    ("/v1/chat/completions", "bedrock/amazon.nova-pro-v1:0"),
    ("/v1/messages", "bedrock/amazon.nova-pro-v1:0"),
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["type", "role", "content", "text", "name", "id"]), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from([*((path, body["model"]) for path, body in DOORS.items()), *TRANSLATED]),
    field=st.sampled_from(READ_FIELDS),
    value=JSON_VALUES,
    stream=st.booleans(),
)
def test_any_json_value_in_any_field_is_answered_never_a_gateway_error(gw, route, field, value, stream):
    path, model = route
    body = (
        DOORS[path] | {"model": model, field: value} | ({"stream": True} if stream and "embeddings" not in path else {})
    )
    response = gw.post(path, body)
    # The gateway itself never fails on what a client sent (a 502 is the provider's own failure)
    assert response.status_code < 500 or error_of(path, response)["type"] in ("upstream_error", "api_error")
    assert "Internal error in the gateway" not in response.text
    if 400 <= response.status_code < 500 and not gw.upstream_requests:
        assert gw.untouched()
    gw.forget()


@pytest.mark.parametrize("block", [{"type": "text"}, {"type": "tool_use"}, {"type": "tool_result"}])
def test_a_block_missing_its_fields_for_a_converse_model_is_a_400_not_a_gateway_error(gw, block):
    # Converse's translation reads the block's fields itself: what it cannot read is the client's
    body = DOORS["/v1/messages"] | {"model": "bedrock/amazon.nova-pro-v1:0"}
    body["messages"] = [{"role": "user", "content": [block]}]

    error = refused(gw, "/v1/messages", body)

    assert "cannot be sent to bedrock/amazon.nova-pro-v1:0" in error["message"]
    assert not gw.upstream_requests and gw.untouched()
