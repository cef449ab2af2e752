"""Claude on Amazon Bedrock through every front door, with the official SDKs, against the local
stack's fake Bedrock Runtime: the gateway signs each call with SigV4 (the fake checks the
signature against the stack's credentials), reads AWS's binary event stream, and meters the
tokens Bedrock reported at Bedrock's prices (genai-prices' ``aws`` provider)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
from genai_prices import Usage, calc_price

from tests.e2e.expected import anthropic_price, assert_anthropic_usage_recorded
from tests.e2e.sdk_streams import stream_to_its_error

pytestmark = pytest.mark.e2e

BEDROCK_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
MODEL = f"bedrock/{BEDROCK_ID}"
NOVA_ID = "amazon.nova-pro-v1:0"
NOVA = f"bedrock/{NOVA_ID}"
PROMPT = "Explain why a gateway meters every token."


@pytest.fixture(autouse=True)
def fresh_fake(stack):
    httpx.post(f"{stack.fake}/_fake/reset").raise_for_status()
    httpx.delete(f"{stack.fake}/_fake/faults").raise_for_status()


def claude(stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.base, api_key=stack.api_key, max_retries=0)


def bedrock_calls(stack) -> list[dict[str, Any]]:
    return [entry for entry in stack.fake_requests() if entry["path"].startswith("/model/")]


def ask(stack, door: str, *, stream: bool, model: str = MODEL) -> tuple[str, str]:
    """One request to ``model`` through ``door`` with its SDK: the answer's text and the request id."""
    if door == "messages":
        client = claude(stack)
        if stream:
            with client.messages.stream(
                model=model, max_tokens=300, messages=[{"role": "user", "content": PROMPT}]
            ) as s:
                text = s.get_final_text()
                return text, s.response.headers["x-meterway-request-id"]
        raw = client.messages.with_raw_response.create(
            model=model, max_tokens=300, messages=[{"role": "user", "content": PROMPT}]
        )
        return raw.parse().content[0].text, raw.headers["x-meterway-request-id"]
    oai = stack.openai()
    if door == "chat":
        if stream:
            chunks = oai.chat.completions.create(
                model=model, messages=[{"role": "user", "content": PROMPT}], stream=True
            )
            text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
            return text, chunks.response.headers["x-meterway-request-id"]
        raw = oai.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": PROMPT}])
        return raw.parse().choices[0].message.content or "", raw.headers["x-meterway-request-id"]
    if stream:
        events = oai.responses.create(model=model, input=PROMPT, stream=True)
        text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
        return text, events.response.headers["x-meterway-request-id"]
    raw = oai.responses.with_raw_response.create(model=model, input=PROMPT)
    return raw.parse().output_text, raw.headers["x-meterway-request-id"]


def test_bedrock_models_are_listed_with_bedrocks_own_prices(stack):
    listed = {model.id: model for model in stack.openai().models.list()}

    # Bedrock's regional price for Claude, not Anthropic's: $3.30 and $16.50 per million
    pricing = listed[MODEL].model_extra["pricing"]
    assert (Decimal(pricing["input_mtok"]), Decimal(pricing["output_mtok"])) == (Decimal("3.3"), Decimal("16.5"))
    assert listed[MODEL].owned_by == "bedrock"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("door", ["messages", "chat", "responses"])
def test_each_front_door_reaches_claude_on_bedrock_signed_and_metered_as_bedrock_reported(stack, door, stream):
    text, request_id = ask(stack, door, stream=stream)

    (call,) = bedrock_calls(stack)
    operation = "invoke-with-response-stream" if stream else "invoke"
    # InvokeModel with the model in the path, Anthropic's body with Bedrock's version, signed by the role
    assert call["path"] == f"/model/{BEDROCK_ID}/{operation}"
    assert call["body"]["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in call["body"] and "stream" not in call["body"]
    assert call["headers"]["authorization"] == "***" and "x-amz-date" in call["headers"]
    assert call["status"] == 200 and text
    record = stack.generation(request_id)
    assert (record["provider"], record["model"], record["status"], record["streamed"]) == (
        "bedrock",
        MODEL,
        "ok",
        stream,
    )
    assert_anthropic_usage_recorded(record, call["usage"], BEDROCK_ID, provider_id="aws")


def test_a_messages_request_passes_through_with_thinking_tools_cache_control_and_betas(stack):
    system = [{"type": "text", "text": "You are a billing assistant. " * 400, "cache_control": {"type": "ephemeral"}}]
    tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    client = claude(stack)

    first = client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=2000,
        system=system,
        tools=tools,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Think, then say hello."}],
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    again = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=300, system=system, tools=tools, messages=[{"role": "user", "content": "Hi again."}]
    )

    sent, second = bedrock_calls(stack)
    assert sent["body"]["system"] == system and sent["body"]["tools"] == tools
    assert sent["body"]["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["body"]["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    assert first.parse().content[0].type == "thinking"
    # The prefix was written to the cache, then read back: each class metered apart, at Bedrock's rates
    written, read = (
        stack.generation(first.headers["x-meterway-request-id"]),
        stack.generation(again.headers["x-meterway-request-id"]),
    )
    assert written["cache_creation_tokens"] == sent["usage"]["cache_creation_input_tokens"] > 0
    assert read["cache_read_tokens"] == second["usage"]["cache_read_input_tokens"] > 0
    assert Decimal(str(read["cost_usd"])) == anthropic_price(BEDROCK_ID, second["usage"], "aws")


@pytest.mark.parametrize("door", ["messages", "chat"])
def test_bedrock_throttling_reaches_the_client_as_a_429_in_its_format(stack, door):
    httpx.post(
        f"{stack.fake}/_fake/faults", json={"faults": [{"kind": "status", "status": 429}], "match": {}}
    ).raise_for_status()

    if door == "messages":
        with pytest.raises(anthropic.RateLimitError) as raised:
            claude(stack).messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    else:
        with pytest.raises(openai.RateLimitError) as raised:
            stack.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])

    assert "Too many requests" in str(raised.value)
    record = stack.generation(raised.value.response.headers["x-meterway-request-id"])
    assert (record["status"], record["upstream_status"], record["cost_usd"]) == ("error", 429, 0)


def test_bedrock_refusing_the_gateways_role_is_a_bare_502_that_names_nothing_of_aws(stack):
    httpx.post(
        f"{stack.fake}/_fake/faults",
        json={
            "faults": [
                {
                    "kind": "status",
                    "status": 403,
                    "message": "User: arn:aws:sts::123456789012:assumed-role/x is not authorized",
                }
            ]
        },
    ).raise_for_status()

    with pytest.raises(anthropic.APIStatusError) as raised:
        claude(stack).messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}])

    assert raised.value.status_code == 502
    assert "arn:aws" not in str(raised.value.body) and "not a problem with your request" in str(raised.value)


@pytest.mark.parametrize("door", ["messages", "chat", "responses"])
def test_an_exception_inside_bedrocks_stream_ends_the_clients_stream_with_an_error_and_bills_what_was_sent(stack, door):
    httpx.post(
        f"{stack.fake}/_fake/faults",
        json={"faults": [{"kind": "stream_error", "after_tokens": 3, "message": "The model is overloaded."}]},
    ).raise_for_status()

    request_id, said = stream_to_its_error(stack, door, MODEL, PROMPT)

    (call,) = bedrock_calls(stack)
    assert call["fault"]["kind"] == "stream_error"
    assert "overloaded" in said.lower()
    record = stack.generation(request_id)
    assert (record["status"], record["provider"]) == ("partial", "bedrock")
    assert record["output_tokens"] >= 3 and Decimal(str(record["cost_usd"])) > 0


def nova_price(usage: dict[str, Any]) -> Decimal:
    """Converse's usage priced at Nova's rates (its ``inputTokens`` leave the cache out)."""
    reads, writes = usage.get("cacheReadInputTokens", 0), usage.get("cacheWriteInputTokens", 0)
    return calc_price(
        Usage(
            input_tokens=usage["inputTokens"] + reads + writes,
            cache_read_tokens=reads,
            cache_write_tokens=writes,
            output_tokens=usage["outputTokens"],
        ),
        model_ref=NOVA_ID,
        provider_id="aws",
    ).total_price


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("door", ["messages", "chat", "responses"])
def test_each_front_door_reaches_a_converse_model_and_is_metered_as_bedrock_reported(stack, door, stream):
    text, request_id = ask(stack, door, stream=stream, model=NOVA)

    (call,) = bedrock_calls(stack)
    # Converse, with the conversation in Converse's words
    assert call["path"] == f"/model/{NOVA_ID}/{'converse-stream' if stream else 'converse'}"
    assert call["body"]["messages"] == [{"role": "user", "content": [{"text": PROMPT}]}]
    assert call["status"] == 200 and text
    record = stack.generation(request_id)
    assert (record["provider"], record["model"], record["status"]) == ("bedrock", NOVA, "ok")
    usage = call["usage"]
    assert (record["input_tokens"], record["output_tokens"]) == (usage["inputTokens"], usage["outputTokens"])
    assert Decimal(str(record["cost_usd"])) == nova_price(usage) > 0


def test_a_chat_client_runs_a_tool_round_trip_on_a_converse_model(stack):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    system = {"role": "system", "content": "You are a weather assistant. " * 300}
    asked = [system, {"role": "user", "content": "Use get_weather for Paris."}]
    client = stack.openai()

    called = client.chat.completions.create(model=NOVA, messages=asked, tools=tools)
    (tool_call,) = called.choices[0].message.tool_calls or []
    answered = client.chat.completions.create(
        model=NOVA,
        tools=tools,
        messages=[
            *asked,
            called.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": tool_call.id, "content": "18 degrees and sunny"},
        ],
    )

    first, second = bedrock_calls(stack)
    assert called.choices[0].finish_reason == "tool_calls" and tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments)["city"]
    assert first["body"]["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    # The tool's result went back as a toolResult, and the answer quotes it
    results = [block for message in second["body"]["messages"] for block in message["content"] if "toolResult" in block]
    assert results[0]["toolResult"]["toolUseId"] == tool_call.id
    assert "18 degrees" in (answered.choices[0].message.content or "")
    assert answered.usage and answered.usage.total_tokens > 0


def test_what_converse_cannot_say_is_a_400_that_names_it_and_reaches_nothing(stack):
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude(stack).messages.create(
            model=NOVA,
            max_tokens=2000,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"top_k": 5},
        )

    assert "top_k is not available for amazon.nova-pro-v1:0" in str(raised.value)
    assert bedrock_calls(stack) == []
