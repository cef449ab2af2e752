"""Providers by configuration: the local stack's providers file (devstack/providers.json) adds
two OpenAI-compatible providers, both served by the fake upstream: ``groq`` priced by its
genai-prices reference, ``vllm`` at explicit rates. Each is reached from the front doors with the
official SDKs, with its own key, and metered at its own prices."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from genai_prices import Usage, calc_price

from devstack.stack import free_port
from tests.e2e.conftest import ROOT, LocalStack, launched

pytestmark = pytest.mark.e2e

GROQ = "groq/llama-3.3-70b-versatile"
VLLM = "vllm/qwen2.5-coder-32b-instruct"
PROVIDERS = json.loads((ROOT / "devstack" / "providers.json").read_text())["providers"]
VLLM_RATES = {name: Decimal(rate) for name, rate in PROVIDERS["vllm"]["models"][0]["prices"].items()}
PROMPT = [{"role": "user", "content": "Explain why a gateway meters every token."}]


@pytest.fixture(scope="module")
def keyed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack with each provider's key in its environment, as ``<NAME>_API_KEY``."""
    env = {"GROQ_API_KEY": "gsk-local-groq-key", "VLLM_API_KEY": "local-vllm-key"}
    with launched(
        tmp_path_factory.mktemp("providers"), token_latency_ms=0, first_token_latency_ms=0, env=env
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_fake(keyed_stack):
    httpx.post(f"{keyed_stack.fake}/_fake/reset").raise_for_status()


def upstream_calls(stack: LocalStack) -> list[dict[str, Any]]:
    return [entry for entry in stack.fake_requests() if entry["path"].startswith("/v1/")]


def test_the_configured_models_are_listed_with_their_prices(keyed_stack):
    listed = {model.id: model.model_extra for model in keyed_stack.openai().models.list()}

    groq = calc_price(Usage(input_tokens=1_000_000), model_ref="llama-3.3-70b-versatile", provider_id="groq")
    assert Decimal(listed[GROQ]["pricing"]["input_mtok"]) == Decimal(str(groq.model_price.input_mtok))
    assert Decimal(listed[VLLM]["pricing"]["output_mtok"]) == VLLM_RATES["output_mtok"]
    assert Decimal(listed[VLLM]["pricing"]["cache_read_mtok"]) == VLLM_RATES["cache_read_mtok"]


def test_a_chat_client_reaches_a_configured_provider_with_its_key_and_pays_its_explicit_rates(keyed_stack):
    raw = keyed_stack.openai().chat.completions.with_raw_response.create(model=VLLM, messages=PROMPT)
    completion = raw.parse()

    (call,) = upstream_calls(keyed_stack)
    assert call["path"] == "/v1/chat/completions" and call["body"]["model"] == "qwen2.5-coder-32b-instruct"
    # vllm's key, from VLLM_API_KEY into the entry its api_key_secret names (redacted by the fake's log)
    assert call["headers"]["authorization"] == "***"
    record = keyed_stack.generation(raw.headers["x-meterway-request-id"])
    usage = call["usage"]
    expected = (
        Decimal(usage["prompt_tokens"]) * VLLM_RATES["input_mtok"]
        + Decimal(usage["completion_tokens"]) * VLLM_RATES["output_mtok"]
    ) / 1_000_000
    assert (record["provider"], record["model"]) == ("vllm", VLLM)
    assert Decimal(str(record["cost_usd"])) == expected > 0
    assert Decimal(str(completion.usage.model_extra["cost"])) == expected


def test_a_messages_client_reaches_a_configured_provider_by_translation_at_its_genai_prices_rates(keyed_stack):
    client = anthropic.Anthropic(base_url=keyed_stack.base, api_key=keyed_stack.api_key, max_retries=0)
    with client.messages.stream(model=GROQ, max_tokens=200, messages=PROMPT) as stream:
        text = stream.get_final_text()
        request_id = stream.response.headers["x-meterway-request-id"]

    (call,) = upstream_calls(keyed_stack)
    assert call["path"] == "/v1/chat/completions" and text
    assert call["headers"]["authorization"] == "***"  # the key from GROQ_API_KEY, redacted by the fake's log
    record = keyed_stack.generation(request_id)
    usage = call["usage"]
    expected = calc_price(
        Usage(input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]),
        model_ref="llama-3.3-70b-versatile",
        provider_id="groq",
    ).total_price
    assert record["provider"] == "groq" and Decimal(str(record["cost_usd"])) == expected > 0


def test_the_local_files_route_serves_groqs_llama_from_bedrock_when_groq_fails(keyed_stack):
    keyed_stack.fake_faults({"kind": "status", "status": 503}, model="llama-3.3-70b-versatile")

    raw = keyed_stack.openai().chat.completions.with_raw_response.create(model=GROQ, messages=PROMPT)
    completion = raw.parse()

    assert completion.model == GROQ and completion.choices[0].message.content
    assert [call["path"] for call in keyed_stack.fake_requests()] == [
        "/v1/chat/completions",
        "/model/us.meta.llama3-3-70b-instruct-v1:0/converse",
    ]
    record = keyed_stack.generation(raw.headers["x-meterway-request-id"])
    assert (record["provider"], record["route"], record["attempts"]) == (
        "bedrock",
        "bedrock/us.meta.llama3-3-70b-instruct-v1:0",
        2,
    )


def test_a_responses_client_is_told_a_provider_without_responses_cannot_be_reached_that_way(keyed_stack):
    with pytest.raises(openai.BadRequestError) as raised:
        keyed_stack.openai().responses.create(model=VLLM, input="hi")

    assert "cannot be reached through the responses endpoint" in str(raised.value)
    assert upstream_calls(keyed_stack) == []


def test_a_providers_file_that_is_not_valid_stops_the_stack_saying_where(tmp_path: Path):
    broken, state = tmp_path / "providers.json", tmp_path / "state"
    state.mkdir()
    broken.write_text(
        json.dumps(
            {
                "providers": {
                    "acme": {
                        "base_url": "https://acme.example/v1",
                        "models": [{"id": "m1", "prices": {"provider": "nope"}}],
                    }
                }
            }
        )
    )

    with (
        pytest.raises(RuntimeError) as failed,
        launched(state, token_latency_ms=0, first_token_latency_ms=0, env={"MW_PROVIDERS_FILE": str(broken)}),
    ):
        pass

    assert "acme/m1: genai-prices has no model 'm1' for provider 'nope'" in str(failed.value)


def test_a_provider_that_refuses_the_connection_is_a_502_and_an_error_record_that_bills_nothing(tmp_path: Path):
    # Given a provider configured at a port where nothing listens
    dead_port = free_port()
    file = tmp_path / "providers.json"
    offline = {
        "base_url": f"http://127.0.0.1:{dead_port}/v1",
        "models": [{"id": "m1", "prices": {"input_mtok": "1", "output_mtok": "1"}}],
    }
    file.write_text(json.dumps({"providers": {"offline": offline}}))
    state = tmp_path / "state"
    state.mkdir()

    with launched(state, token_latency_ms=0, first_token_latency_ms=0, env={"MW_PROVIDERS_FILE": str(file)}) as stack:
        with pytest.raises(openai.InternalServerError) as raised:
            stack.openai().chat.completions.create(model="offline/m1", messages=PROMPT)
        record = stack.generation(raised.value.response.headers["x-meterway-request-id"])

    assert raised.value.status_code == 502 and "could not be reached" in str(raised.value)
    assert (record["status"], record["provider"], record["cost_usd"], record["total_tokens"]) == (
        "error",
        "offline",
        0,
        0,
    )
