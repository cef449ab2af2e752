"""The proxy app in-process in front of the local stack's fake upstream (both providers, every wire
format), its stores in memory: for tests that go through every front door without a stack."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import httpx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from devstack.fake_upstream.app import create_app as create_fake_upstream
from devstack.fake_upstream.faults import parse_fault_request
from meterway.accounts.logic.key_secrets import hash_secret, mint_key
from meterway.accounts.models import KeyLimits
from meterway.core.settings import ProxySettings, SecretText
from meterway.proxy.dal.upstream import Upstream
from meterway.proxy.handlers.app import create_app
from meterway.proxy.handlers.deps import ProxyDeps
from meterway.proxy.providers import build_providers
from tests.fakes import FakeQuotas, InMemoryKeyStore, InMemoryLedger, InMemorySpill

UPSTREAM_KEYS = {"openai": "sk-proj-upstream-openai-0000", "anthropic": "sk-ant-upstream-anthropic-0000"}
HARNESS_AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAHARNESS000000000", "AWS_SECRET_ACCESS_KEY": "harness-secret"}
PROMPT = [{"role": "user", "content": "Capital of France?"}]
# A request each front door takes, by path; ``DOORS[path] | {"model": ...}`` is ready to send.
DOORS: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "openai/gpt-4o-mini", "messages": PROMPT},
    "/v1/messages": {"model": "anthropic/claude-haiku-4-5", "max_tokens": 64, "messages": PROMPT},
    "/v1/responses": {"model": "openai/gpt-4o-mini", "input": "Capital of France?"},
    "/v1/embeddings": {"model": "openai/text-embedding-3-small", "input": "Capital of France?"},
}


@dataclass
class Gateway:
    client: TestClient
    secret: str
    quotas: FakeQuotas
    ledger: InMemoryLedger
    upstream: Starlette

    def post(self, path: str, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        """``body`` as JSON (bytes are sent as they are), with the key as a bearer token."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"authorization": f"Bearer {self.secret}", "content-type": "application/json"} | (headers or {})
        return self.client.post(path, content=content, headers=sent)

    @property
    def upstream_requests(self) -> list[Any]:
        return list(self.upstream.state.fake.requests)

    def fault(self, *faults: dict[str, Any]) -> None:
        """Queue faults on the fake upstream, as ``POST /_fake/faults`` does."""
        self.upstream.state.fake.faults.add(parse_fault_request({"faults": list(faults)}))

    def forget(self) -> None:
        """Start again from nothing reserved, recorded or sent (between a property's examples)."""
        self.quotas.reserved.clear()
        self.ledger.items.clear()
        self.upstream.state.fake.requests.clear()

    def untouched(self) -> bool:
        """Nothing held, recorded or sent upstream. A key this instance saw far from its limits
        is read before its request's body is (``ProxyDeps.check_early``): a check that only
        reads changes nothing, one that holds a minute would."""
        held = [reservation for reservation, _ in self.quotas.reserved if reservation.holds_minute]
        return not held and not self.ledger.items and not self.upstream_requests


@contextmanager
def gateway(limits: KeyLimits | None = None) -> Iterator[Gateway]:
    settings = ProxySettings(
        keys_table="keys",
        ledger_table="ledger",
        spill_queue_url="http://queue.invalid/spill",
        openai_base_url="http://upstream.test/v1",
        openai_api_key=SecretText(UPSTREAM_KEYS["openai"]),
        anthropic_base_url="http://upstream.test",
        anthropic_api_key=SecretText(UPSTREAM_KEYS["anthropic"]),
        bedrock_endpoint_url="http://upstream.test",
    )
    keys, quotas, ledger, upstream = InMemoryKeyStore(), FakeQuotas(), InMemoryLedger(), create_fake_upstream()
    key, secret = mint_key("acct", "harness", limits=limits or KeyLimits())
    keys.put(key, hash_secret(secret))

    def deps() -> ProxyDeps:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=upstream), base_url="http://upstream.test")
        return ProxyDeps(settings, keys, quotas, ledger, InMemorySpill(), Upstream(http), build_providers(settings, {}))

    # Bedrock is signed with the process's AWS credentials (the function's role, in AWS).
    with (
        mock.patch.dict(os.environ, HARNESS_AWS_CREDENTIALS),
        TestClient(create_app(deps), raise_server_exceptions=False) as client,
    ):
        yield Gateway(client, secret, quotas, ledger, upstream)
