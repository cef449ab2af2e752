"""The proxy's request path in-process: the real app, routes and logic, with the stores faked in
memory and the upstream faked at the HTTP layer (auth → reserve → upstream → settle)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from meterway.accounts.dal.quota_store import Standing
from meterway.accounts.logic.key_secrets import hash_secret, mint_key
from meterway.accounts.models import KeyLimits
from meterway.core.container import container
from meterway.core.settings import ConfigurationError, ProxySettings, SecretText
from meterway.proxy.dal.upstream import Upstream
from meterway.proxy.handlers.app import create_app
from meterway.proxy.handlers.deps import ProxyDeps
from meterway.proxy.providers import build_providers
from tests.fakes import FakeQuotas, InMemoryKeyStore, InMemoryLedger, InMemorySpill

UPSTREAM_KEY = "sk-upstream-configured"
USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 40,
    "total_tokens": 1240,
    "prompt_tokens_details": {"cached_tokens": 1024},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


@dataclass
class FakeOpenAI:
    """An OpenAI Chat Completions upstream: answers as the API does, records what it was sent."""

    status: int = 200
    received: list[httpx.Request] = field(default_factory=list)
    # Raised instead of answering: a provider that cannot be reached.
    unreachable: Exception | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        if self.unreachable is not None:
            raise self.unreachable
        if self.status != 200:
            return httpx.Response(
                self.status, json={"error": {"message": "The server had an error", "type": "server_error"}}
            )
        body = json.loads(request.content)
        if not body.get("stream"):
            return httpx.Response(200, json=self._completion(body))
        return httpx.Response(200, content=self._stream(body), headers={"content-type": "text/event-stream"})

    @staticmethod
    def _completion(body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "chatcmpl-upstream",
            "object": "chat.completion",
            "created": 1_764_000_000,
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
            "usage": USAGE,
        }

    @staticmethod
    def _stream(body: dict[str, Any]) -> bytes:
        base = {"id": "chatcmpl-upstream", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}
        chunks = [
            base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
            base | {"choices": [{"index": 0, "delta": {"content": "Par"}, "finish_reason": None}]},
            base | {"choices": [{"index": 0, "delta": {"content": "is."}, "finish_reason": None}]},
            base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append(base | {"choices": [], "usage": USAGE})
        events = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]
        return "".join(events).encode()


@dataclass
class Proxy:
    client: TestClient
    secret: str
    key_id: str
    quotas: FakeQuotas
    ledger: InMemoryLedger
    upstream: FakeOpenAI

    def chat(self, **body: Any) -> httpx.Response:
        request = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Capital of France?"}]}
        headers = {"authorization": f"Bearer {self.secret}"}
        return self.client.post("/v1/chat/completions", json=request | body, headers=headers)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    settings = ProxySettings(
        keys_table="keys",
        ledger_table="ledger",
        spill_queue_url="http://queue.invalid/spill",
        openai_base_url="http://openai.upstream.test/v1",
        openai_api_key=SecretText(UPSTREAM_KEY),
        anthropic_base_url="http://anthropic.upstream.test",
    )
    keys, quotas, ledger, upstream = InMemoryKeyStore(), FakeQuotas(), InMemoryLedger(), FakeOpenAI()
    key, secret = mint_key("acct", "ci", limits=KeyLimits(spend_limit_usd=Decimal(5), spend_period="daily"))
    keys.put(key, hash_secret(secret))

    def deps() -> ProxyDeps:
        http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
        return ProxyDeps(settings, keys, quotas, ledger, InMemorySpill(), Upstream(http), build_providers(settings, {}))

    with TestClient(create_app(deps)) as client:
        yield Proxy(client, secret, key.key_id, quotas, ledger, upstream)


def test_a_request_is_authenticated_reserved_forwarded_priced_and_settled_once(proxy):
    response = proxy.chat()

    assert response.status_code == 200
    answer = response.json()
    [item] = proxy.ledger.items.values()
    # The client gets the gateway's id, in the body and the header, and the record's cost
    assert answer["id"] == response.headers["x-meterway-request-id"] == item["request_id"]
    assert answer["model"] == "openai/gpt-4o-mini"
    assert answer["choices"][0]["message"]["content"] == "Paris."
    assert Decimal(str(answer["usage"]["cost"])) == item["cost_usd"] > 0
    # The token classes are disjoint: OpenAI's prompt_tokens included its cached ones
    assert (item["input_tokens"], item["cache_read_tokens"], item["output_tokens"]) == (176, 1024, 40)
    assert item["status"] == "ok" and item["key_id"] == proxy.key_id and not item["streamed"]
    # One reservation, under the hash of the presented secret; the record carries its counters'
    # settlement with the cost, for the aggregator to add
    [(reservation, key_hash)] = proxy.quotas.reserved
    assert key_hash == hash_secret(proxy.secret) and reservation.spend_period is not None
    spent = {(c["pk"], c["sk"]): c["deltas"] for c in item["counters"]}
    assert spent[("ACCOUNT#acct", "BALANCE")] == {"spent_usd": item["cost_usd"]}
    # The upstream saw its own model id and the configured provider key, never the client's
    [sent] = proxy.upstream.received
    assert json.loads(sent.content)["model"] == "gpt-4o-mini"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert proxy.secret not in sent.headers.values()


def test_the_body_goes_upstream_as_the_client_sent_it_but_for_its_nulls_and_the_gateways_fields(proxy):
    extra = {"temperature": 0.2, "tools": [{"type": "function", "function": {"name": "f", "x": None}}]}
    response = proxy.chat(seed=None, user="u-1", provider={"only": ["openai"]}, vendor_field={"a": None}, **extra)

    assert response.status_code == 200, response.text
    [sent] = proxy.upstream.received
    body = json.loads(sent.content)
    # Fields the gateway does not know go on whole (nulls inside them too); a top-level null is
    # dropped, ``stream`` takes its default, and the gateway's own ``provider`` pin is taken out
    assert body["tools"] == extra["tools"] and body["vendor_field"] == {"a": None}
    assert body["temperature"] == 0.2 and body["user"] == "u-1" and body["stream"] is False
    assert "seed" not in body and "provider" not in body


def test_a_stream_is_relayed_and_ends_with_the_priced_usage(proxy):
    response = proxy.chat(stream=True)

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Paris."
    usage_chunk = chunks[-1]
    [item] = proxy.ledger.items.values()
    assert usage_chunk["choices"] == [] and usage_chunk["id"] == item["request_id"]
    assert Decimal(str(usage_chunk["usage"]["cost"])) == item["cost_usd"] > 0
    assert item["streamed"] and item["status"] == "ok" and item["finish_reason"] == "stop"
    # The gateway asked for the usage chunk itself: a stream without it could not be metered
    assert json.loads(proxy.upstream.received[0].content)["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("cause", "status", "code"),
    [
        ("key", 401, "invalid_api_key"),
        ("spend", 402, "key_spend_limit_reached"),
        ("minute", 429, "rate_limit_exceeded"),
        ("balance", 402, "insufficient_credit"),
    ],
)
def test_a_refused_reservation_answers_for_its_cause_and_costs_nothing(proxy, cause, status, code):
    proxy.quotas.refuse = cause

    response = proxy.chat()

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert proxy.upstream.received == [] and proxy.ledger.items == {}


def test_an_upstream_failure_is_a_502_recorded_as_an_error_that_bills_nothing(proxy):
    proxy.upstream.status = 500

    response = proxy.chat()

    assert response.status_code == 502 and response.json()["error"]["type"] == "upstream_error"
    [item] = proxy.ledger.items.values()
    assert (item["status"], item["upstream_status"], item["cost_usd"]) == ("error", 500, 0)


@pytest.mark.parametrize("stream", [False, True])
def test_a_provider_that_cannot_be_reached_is_a_502_recorded_as_an_error_whose_reservation_is_settled(proxy, stream):
    proxy.upstream.unreachable = httpx.ConnectError("[Errno 111] Connection refused")

    response = proxy.chat(stream=stream)

    # Nothing was streamed yet: the client gets a status, in its envelope, never the socket's words
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_error" and "Errno" not in error["message"]
    [item] = proxy.ledger.items.values()
    assert (item["status"], item["cost_usd"], item["total_tokens"]) == ("error", 0, 0)
    # The reservation it made is released with the record: nothing left in flight
    spent = {(c["pk"], c["sk"]): c["deltas"] for c in item["counters"]}
    assert spent[("ACCOUNT#acct", "BALANCE")] == {"spent_usd": 0}


def test_an_unknown_key_is_refused_before_anything_is_reserved(proxy):
    response = proxy.client.post("/v1/chat/completions", json={}, headers={"authorization": "Bearer mw-live-nope"})

    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"
    assert proxy.quotas.reserved == [] and proxy.upstream.received == []


def test_the_app_refuses_to_start_without_its_tables(monkeypatch):
    # Given the function's environment lacks the keys table
    monkeypatch.setenv("MW_LEDGER_TABLE", "ledger")
    monkeypatch.setenv("MW_SPILL_QUEUE_URL", "http://queue.invalid/spill")
    monkeypatch.delenv("MW_KEYS_TABLE", raising=False)
    container.reset()
    # When the app starts, Then it stops at start-up and names what is missing
    with pytest.raises(ConfigurationError, match="MW_KEYS_TABLE: missing"), TestClient(create_app()):
        pass
    container.reset()


def test_a_stream_of_a_key_far_from_its_limits_is_checked_while_the_upstream_is_called(proxy):
    # Given this instance saw the key far from its $5 daily limit
    proxy.quotas.standing = Standing(spent_usd=Decimal("0.10"))
    assert proxy.chat(stream=True).status_code == 200
    calls = len(proxy.upstream.received)
    # When the key is disabled, and its next stream is checked while the upstream is called
    proxy.quotas.refuse = "key"
    response = proxy.chat(stream=True)
    # Then the upstream was called, but nothing of its answer reaches the client: a 401 in its envelope
    assert len(proxy.upstream.received) == calls + 1
    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"
    assert "data:" not in response.text
    # And the call is on the ledger, billing nothing and counting in no counter
    item = max(proxy.ledger.items.values(), key=lambda item: item["created_at"])
    assert (item["status"], item["cost_usd"], item["upstream_status"]) == ("error", 0, 200)
    assert "counters" not in item
    # And the key, refused, is checked before the upstream from then on
    assert proxy.chat(stream=True).status_code == 401
    assert len(proxy.upstream.received) == calls + 1


@pytest.mark.parametrize(
    ("spent", "stream"), [(Decimal("4.50"), True), (Decimal("0.10"), False)], ids=["near its limit", "not streamed"]
)
def test_a_key_near_its_limit_or_an_answer_not_streamed_is_checked_before_the_upstream(proxy, spent, stream):
    proxy.quotas.standing = Standing(spent_usd=spent)
    assert proxy.chat(stream=stream).status_code == 200
    calls = len(proxy.upstream.received)
    proxy.quotas.refuse = "spend"

    response = proxy.chat(stream=stream)

    assert response.status_code == 402 and response.json()["error"]["code"] == "key_spend_limit_reached"
    assert len(proxy.upstream.received) == calls


def test_a_key_far_from_its_limits_is_checked_while_its_request_is_read_and_translated(proxy, monkeypatch):
    # Given this instance saw the key far from its limits, and a log of when the check starts and
    # when the request is translated for the upstream
    from meterway.proxy.formats.chat import ChatPassThrough

    proxy.quotas.standing = Standing(spent_usd=Decimal("0.10"))
    assert proxy.chat(stream=True).status_code == 200
    log: list[str] = []
    reserve, translate = proxy.quotas.reserve, ChatPassThrough.request

    async def logged_reserve(*args: Any) -> Standing:
        log.append("check")
        return await reserve(*args)

    def logged_translate(self: ChatPassThrough, *args: Any) -> dict[str, Any]:
        log.append("translate")
        return translate(self, *args)

    monkeypatch.setattr(proxy.quotas, "reserve", logged_reserve)
    monkeypatch.setattr(ChatPassThrough, "request", logged_translate)
    # When its next stream comes, Then its check went out before the request was translated
    assert proxy.chat(stream=True).status_code == 200
    assert log == ["check", "translate"]
    # And a request of a key not seen far is translated first: a bad one is refused before any check
    proxy.quotas.standing = Standing(spent_usd=Decimal("4.50"))
    assert proxy.chat(stream=True).status_code == 200
    log.clear()
    assert proxy.chat(stream=True).status_code == 200
    assert log == ["translate", "check"]


def test_a_bad_request_of_a_key_far_from_its_limits_is_refused_with_its_early_check_left_harmless(proxy):
    # Given a key seen far from its limits, then disabled
    proxy.quotas.standing = Standing(spent_usd=Decimal("0.10"))
    assert proxy.chat(stream=True).status_code == 200
    items, calls = len(proxy.ledger.items), len(proxy.upstream.received)
    proxy.quotas.refuse = "key"
    # When it sends a request with a bad body, Then the body's 400 is the answer (its check, started
    # early and refused, is nobody's) and nothing was recorded or sent
    response = proxy.chat(stream=True, max_tokens="12")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_parameters"
    assert (len(proxy.ledger.items), len(proxy.upstream.received)) == (items, calls)
    # And the refusal was heard: its next request is checked before the upstream, and refused
    proxy.quotas.refuse = "key"
    assert proxy.chat(stream=True).status_code == 401
    assert len(proxy.upstream.received) == calls
