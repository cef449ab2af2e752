"""Through the local stack: a provider refusing the gateway's own key is a bare 502 at every front
door, streamed or not, and its words (which name the key, masked) reach only the log."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.e2e

MASKED_KEY = "sk-proj-****abcd"
REFUSAL = f"Incorrect API key provided: {MASKED_KEY}. You can find your API key at https://platform.openai.com."
PROMPT = [{"role": "user", "content": "hi"}]
DOORS = {
    "/v1/chat/completions": {"model": "openai/gpt-4o-mini", "messages": PROMPT},
    "/v1/messages": {"model": "anthropic/claude-haiku-4-5", "max_tokens": 16, "messages": PROMPT},
    "/v1/responses": {"model": "openai/gpt-4.1-mini", "input": "hi"},
    "/v1/embeddings": {"model": "openai/text-embedding-3-small", "input": "hi"},
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("path", list(DOORS))
def test_the_provider_refusing_the_gateways_key_never_reaches_the_client(stack, path, status, stream):
    if stream and path == "/v1/embeddings":
        pytest.skip("embeddings are never streamed")
    body = DOORS[path] | ({"stream": True} if stream else {})
    stack.fake_faults({"kind": "status", "status": status, "message": REFUSAL}, model=body["model"].split("/")[1])

    response = httpx.post(f"{stack.base}{path}", json=body, headers={"x-api-key": stack.api_key}, timeout=30)

    assert response.status_code == 502
    assert MASKED_KEY not in response.text and "Incorrect API key" not in response.text
    error = response.json()["error"]
    assert "configuration" in error["message"]
    record = stack.generation(response.headers["x-meterway-request-id"])
    assert (record["status"], record["upstream_status"], record["cost_usd"]) == ("error", status, 0)
    log = stack.log.read_text()
    assert "UpstreamCredentialError" in log and "Incorrect API key provided: [key]" in log
    assert MASKED_KEY not in log


def test_the_providers_overload_reaches_a_messages_client_in_its_words(stack):
    body = DOORS["/v1/messages"] | {"stream": True}
    stack.fake_faults({"kind": "status", "status": 529, "message": "Overloaded"}, model="claude-haiku-4-5")
    response = httpx.post(f"{stack.base}/v1/messages", json=body, headers={"x-api-key": stack.api_key}, timeout=30)
    assert response.status_code == 529
    assert response.json()["error"] == {"type": "overloaded_error", "message": "Overloaded"}
