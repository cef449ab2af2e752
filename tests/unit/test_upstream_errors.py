"""Upstream errors split by whose fault they are, at every front door, streamed or not: the client's
own request errors reach it in its format and the provider's words; the provider refusing the
gateway's own credentials or configuration is a bare 502, its words only in the log, counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from meterway.proxy.providers.base import GATEWAY_FAULT_MESSAGE, GATEWAY_FAULT_METRIC
from tests.proxy_harness import DOORS, UPSTREAM_KEYS, Gateway, gateway
from tests.unit.test_bad_input import error_of

MASKED_KEY = "sk-proj-****abcd"
REFUSAL = f"Incorrect API key provided: {MASKED_KEY}. You can find your API key at https://platform.openai.com."
# (door, model): every door on its native provider, and each translation.
ROUTES = [
    *[(path, body["model"]) for path, body in DOORS.items()],
    ("/v1/chat/completions", "anthropic/claude-haiku-4-5"),
    ("/v1/messages", "openai/gpt-4o-mini"),
    ("/v1/responses", "anthropic/claude-haiku-4-5"),
]
CASES = [
    (path, model, stream)
    for path, model in ROUTES
    for stream in (False, True)
    if path != "/v1/embeddings" or not stream
]


@pytest.fixture
def gw() -> Iterator[Gateway]:
    with gateway() as running:
        yield running


def send(gw: Gateway, path: str, model: str, stream: bool) -> Any:
    body = DOORS[path] | {"model": model} | ({"stream": True} if stream else {})
    return gw.post(path, body)


def metrics(captured: str) -> list[dict[str, Any]]:
    """The EMF lines Powertools printed."""
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{") and '"_aws"' in line]


@pytest.mark.parametrize(("path", "model", "stream"), CASES)
@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, REFUSAL),
        (403, f"Project does not have access; key {MASKED_KEY}."),
        (402, "Your credit balance is too low."),
        (404, "Invalid URL (POST /v1/chat/completion)"),
    ],
)
def test_the_provider_refusing_the_gateway_is_a_bare_502_logged_and_counted(
    gw, capsys, caplog, path, model, stream, status, message
):
    # Given the provider refuses the gateway's own key or configuration, naming the key masked
    gw.fault({"kind": "status", "status": status, "message": message})

    response = send(gw, path, model, stream)

    # Then the client gets a 502 in its door's envelope that says the gateway's configuration failed
    assert response.status_code == 502
    error = error_of(path, response)
    assert error["message"] == GATEWAY_FAULT_MESSAGE
    assert error.get("code", "upstream_error") == "upstream_error"
    assert error["type"] in ("upstream_error", "api_error")
    # And nothing of the provider's words, let alone the key
    for leaked in (MASKED_KEY, message, *UPSTREAM_KEYS.values()):
        assert leaked not in response.text
    # The record is an error that bills nothing
    [record] = gw.ledger.items.values()
    assert (record["status"], record["upstream_status"], record["cost_usd"]) == ("error", status, 0)
    # The operators read the provider's words in the log, any key in them masked
    [logged] = [entry for entry in caplog.records if "refused the gateway" in entry.getMessage()]
    assert logged.upstream_status == status and logged.provider == model.split("/")[0]
    assert MASKED_KEY not in logged.upstream_message and message.split(":")[0].split(";")[0] in logged.upstream_message
    # And count it, by provider
    [metric] = [m for m in metrics(capsys.readouterr().out) if GATEWAY_FAULT_METRIC in m]
    assert metric[GATEWAY_FAULT_METRIC] == [1.0] or metric[GATEWAY_FAULT_METRIC] == 1.0
    assert metric["provider"] == model.split("/")[0]


@pytest.mark.parametrize(("path", "model", "stream"), CASES)
@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "Invalid 'messages[0].content': too short."),
        (404, "The model `gpt-4o-mini` does not exist or you do not have access to it."),
        (413, "Request too large."),
        (422, "Unprocessable entity."),
        (429, "Rate limit reached for requests."),
        (529, "Overloaded"),
    ],
)
def test_the_providers_answer_about_the_clients_request_reaches_it_in_its_words(
    gw, capsys, path, model, stream, status, message
):
    gw.fault({"kind": "status", "status": status, "message": message, "retry_after": 7})

    response = send(gw, path, model, stream)

    assert response.status_code == status
    assert error_of(path, response)["message"].endswith(message)
    if status == 429:
        assert response.headers["retry-after"] == "7"
    [record] = gw.ledger.items.values()
    assert (record["status"], record["upstream_status"], record["cost_usd"]) == ("error", status, 0)
    assert not [m for m in metrics(capsys.readouterr().out) if GATEWAY_FAULT_METRIC in m]
