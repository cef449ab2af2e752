"""Claude Code and Codex CLI, unchanged, against the local stack: each answers through Meterway with
an Anthropic model and an OpenAI model, and every call it made is on the ledger with the tokens
the (fake) upstream reported, priced, and in ``/api/usage``."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.clients.harness import InstalledClients, install_clients, run_claude, run_codex
from tests.e2e.conftest import LocalStack, launched_with_providers

# The first test may install the clients (about 800 MB from the npm registry).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

NOVA = "bedrock/amazon.nova-pro-v1:0"
MODELS = [
    "anthropic/claude-sonnet-4-5",
    "openai/gpt-5-mini",
    "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    NOVA,
]
# What each client must be told for a model that cannot do what it asks by default (README,
# "Known limits"): Nova writes at most 10,000 tokens, fewer than Claude Code asks for.
SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    NOVA: {"claude-code": {"extra_env": {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": "10000"}}},
}


@pytest.fixture(scope="module")
def clients() -> InstalledClients:
    return install_clients()


@pytest.fixture(autouse=True)
def fresh_fake(stack) -> Iterator[None]:
    httpx.post(f"{stack.fake}/_fake/reset").raise_for_status()
    httpx.delete(f"{stack.fake}/_fake/faults").raise_for_status()
    yield


@dataclass
class Key:
    id: str
    secret: str


@pytest.fixture
def key(stack, request) -> Key:
    """A key of the test's own, so that its records and usage are exactly the client's."""
    created = stack.admin("POST", "/keys", json={"name": request.node.name[:100]}).json()
    return Key(created["id"], created["secret"])


def key_records(stack, key: Key) -> list[dict[str, Any]]:
    """The key's ledger records, oldest first."""
    page = stack.admin("GET", "/usage/requests", params={"key": key.id, "limit": 200}).json()["data"]
    return [stack.generation(entry["id"]) for entry in reversed(page)]


def assert_metered_as_upstream_reported(stack, key: Key, endpoint: str) -> list[dict[str, Any]]:
    """Every call the client made is one record, with the tokens the fake reported, and a cost."""
    upstream = [request for request in stack.fake_requests() if request.get("usage")]
    records = key_records(stack, key)
    assert records and len(records) == len(upstream)
    for record, sent in zip(records, upstream, strict=True):
        assert record["endpoint"] == endpoint and record["status"] == "ok"
        assert record["total_tokens"] == _upstream_total(sent["usage"]) > 0
        assert record["output_tokens"] > 0 and Decimal(str(record["cost_usd"])) > 0
    return records


def _upstream_total(usage: dict[str, Any]) -> int:
    """Total tokens in each provider's own usage block (OpenAI's, Converse's, Anthropic's)."""
    if "total_tokens" in usage:
        return int(usage["total_tokens"])
    if "totalTokens" in usage:
        return int(usage["totalTokens"])
    writes = usage.get("cache_creation_input_tokens") or 0
    return int(usage["input_tokens"] + writes + (usage.get("cache_read_input_tokens") or 0) + usage["output_tokens"])


def assert_in_usage_totals(stack, key: Key, records: list[dict[str, Any]]) -> None:
    """``/api/usage`` for the key counts exactly its records, to the token and the cent."""
    expected = (
        len(records),
        sum(Decimal(str(r["cost_usd"])) for r in records),
        sum(r["total_tokens"] for r in records),
    )
    deadline = time.monotonic() + 10  # the aggregator rolls the ledger up from its stream
    while True:
        totals = stack.admin("GET", "/usage", params={"key": key.id}).json()["totals"]
        found = (totals["requests"], Decimal(totals["cost"]), totals["total_tokens"])
        if found == expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert found == expected


# Each agent, how it is pointed at Meterway, and the front door it speaks.
AGENTS = {
    "claude-code": (run_claude, "", "messages"),
    "codex": (run_codex, "/v1", "responses"),
}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("agent", AGENTS)
def test_agent_answers_through_meterway_and_every_call_is_metered(stack, clients, key, agent, model, tmp_path: Path):
    run, base_path, endpoint = AGENTS[agent]

    result = run(
        "In one sentence, why should an LLM gateway meter every token?",
        base_url=f"{stack.base}{base_path}",
        api_key=key.secret,
        model=model,
        cwd=tmp_path,
        clients=clients,
        **SETTINGS.get(model, {}).get(agent, {}),
    )

    assert result.returncode == 0 and not result.timed_out, result.describe()
    assert result.result_text, result.describe()
    records = assert_metered_as_upstream_reported(stack, key, endpoint)
    assert {record["model"] for record in records} == {model}
    assert_in_usage_totals(stack, key, records)


@pytest.mark.parametrize("model", MODELS)
def test_claude_code_runs_a_tool_through_meterway(stack, clients, key, model, tmp_path: Path):
    # The fake upstream calls a tool the prompt names; Claude Code runs it and sends the result back.
    (tmp_path / "notes.txt").write_text("metering matters\n")

    result = run_claude(
        "Use the Read tool on notes.txt, then say what it contains.",
        base_url=stack.base,
        api_key=key.secret,
        model=model,
        cwd=tmp_path,
        clients=clients,
        **SETTINGS.get(model, {}).get("claude-code", {}),
    )

    assert result.returncode == 0 and not result.timed_out, result.describe()
    records = assert_metered_as_upstream_reported(stack, key, "messages")
    assert len(records) >= 2  # the call, then the answer to its result
    assert records[0]["finish_reason"] == "tool_use"
    assert "Read tool returned" in (result.result_text or ""), result.describe()
    # Claude Code names a new session in each run's metadata.user_id: the ledger keeps its device.
    (user,) = {record["user"] for record in records}
    assert re.fullmatch(r"[0-9a-f]{64}", user), user
    by_user = stack.admin("GET", "/usage/requests", params={"key": key.id, "user": user, "limit": 200}).json()
    assert [entry["id"] for entry in reversed(by_user["data"])] == [record["request_id"] for record in records]


@pytest.mark.parametrize("model", MODELS)
def test_codex_runs_a_shell_command_through_meterway(stack, clients, key, model, tmp_path: Path):

    result = run_codex(
        "Use exec_command to list the files here, then tell me what you found.",
        base_url=f"{stack.base}/v1",
        api_key=key.secret,
        model=model,
        cwd=tmp_path,
        clients=clients,
        **SETTINGS.get(model, {}).get("codex", {}),
    )

    assert result.returncode == 0 and not result.timed_out, result.describe()
    records = assert_metered_as_upstream_reported(stack, key, "responses")
    assert len(records) >= 2  # the call, then the answer to its output
    assert "exec_command tool returned" in (result.result_text or ""), result.describe()


# Routes: Claude Sonnet at Anthropic, then on Bedrock. The agents do not know; the ledger does.
SONNET = "anthropic/claude-sonnet-4-5"
SONNET_ON_BEDROCK = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    providers = {"routes": {SONNET: [SONNET, SONNET_ON_BEDROCK]}}
    with launched_with_providers(tmp_path_factory.mktemp("routed"), providers) as running:
        yield running


@pytest.fixture
def routed_key(routed, request) -> Key:
    httpx.post(f"{routed.fake}/_fake/reset").raise_for_status()
    created = routed.admin("POST", "/keys", json={"name": request.node.name[:100]}).json()
    return Key(created["id"], created["secret"])


def test_claude_code_is_served_by_the_next_route_when_anthropic_is_overloaded(routed, clients, routed_key, tmp_path):
    # Anthropic is overloaded for the first call; Claude Code itself would retry it, and is told not to.
    routed.fake_faults({"kind": "status", "status": 529}, path="/v1/messages", model="claude-sonnet-4-5")

    result = run_claude(
        "In one sentence, why should an LLM gateway meter every token?",
        base_url=routed.base,
        api_key=routed_key.secret,
        model=SONNET,
        cwd=tmp_path,
        clients=clients,
        max_retries=0,
    )

    assert result.returncode == 0 and not result.timed_out, result.describe()
    records = assert_metered_as_upstream_reported(routed, routed_key, "messages")
    first = records[0]
    assert (first["model"], first["provider"], first["route"], first["attempts"]) == (
        SONNET,
        "bedrock",
        SONNET_ON_BEDROCK,
        2,
    )
    overloaded = routed.generation(f"{first['request_id']}.1")
    assert (overloaded["provider"], overloaded["upstream_status"], overloaded["cost_usd"]) == ("anthropic", 529, 0)
    assert_in_usage_totals(routed, routed_key, records)  # one request per call, the attempt not among them


# How each agent is told to send the pin header: Claude Code's custom headers, Codex's provider's.
PINS: dict[str, dict[str, Any]] = {
    "claude-code": {"extra_env": {"ANTHROPIC_CUSTOM_HEADERS": "x-meterway-provider: bedrock"}},
    "codex": {"http_headers": {"x-meterway-provider": "bedrock"}},
}


@pytest.mark.parametrize("agent", AGENTS)
def test_an_agent_pins_bedrock_with_a_header_it_sends(routed, clients, routed_key, agent, tmp_path):
    run, base_path, endpoint = AGENTS[agent]

    result = run(
        "In one sentence, why should an LLM gateway meter every token?",
        base_url=f"{routed.base}{base_path}",
        api_key=routed_key.secret,
        model=SONNET,
        cwd=tmp_path,
        clients=clients,
        **PINS[agent],
    )

    assert result.returncode == 0 and not result.timed_out, result.describe()
    records = assert_metered_as_upstream_reported(routed, routed_key, endpoint)
    assert {(record["provider"], record["route"]) for record in records} == {("bedrock", SONNET_ON_BEDROCK)}
    # Anthropic, the model's first route, was never called
    assert not [call for call in routed.fake_requests() if call["path"] == "/v1/messages"]
