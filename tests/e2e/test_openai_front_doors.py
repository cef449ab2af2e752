"""The openai SDK's other calls against the local stack: embeddings, one model, bare model ids."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest
from genai_prices import Usage, calc_price

pytestmark = pytest.mark.e2e

PROMPT = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(autouse=True)
def fresh_fake(stack):
    httpx.post(f"{stack.fake}/_fake/reset").raise_for_status()
    httpx.delete(f"{stack.fake}/_fake/faults").raise_for_status()


def test_embeddings_are_metered_priced_and_keep_their_encoding(stack):
    client = stack.openai()
    raw = client.embeddings.with_raw_response.create(
        model="openai/text-embedding-3-small", input=["metered", "priced"], encoding_format="base64"
    )
    embeddings = raw.parse()

    upstream = stack.fake_requests()[-1]
    record = stack.generation(raw.headers["x-meterway-request-id"])
    assert upstream["body"]["encoding_format"] == "base64" and upstream["body"]["model"] == "text-embedding-3-small"
    assert len(embeddings.data) == 2 and len(embeddings.data[0].embedding) > 0
    assert embeddings.model == "openai/text-embedding-3-small"
    tokens = upstream["usage"]["prompt_tokens"]
    assert record["endpoint"] == "embeddings" and record["input_tokens"] == tokens > 0
    assert record["output_tokens"] == 0 and record["total_tokens"] == tokens
    price = calc_price(Usage(input_tokens=tokens), model_ref="text-embedding-3-small", provider_id="openai").total_price
    assert Decimal(str(record["cost_usd"])) == price > 0
    assert Decimal(str(embeddings.usage.model_extra["cost"])) == price


@pytest.mark.parametrize("model_id", ["openai/gpt-4o-mini", "openai%2Fgpt-4o-mini", "gpt-4o-mini"])
def test_one_model_is_found_by_its_id_encoded_or_bare(stack, model_id):
    response = httpx.get(f"{stack.base}/v1/models/{model_id}", headers={"authorization": f"Bearer {stack.api_key}"})

    assert response.status_code == 200
    assert response.json()["id"] == "openai/gpt-4o-mini"
    assert Decimal(response.json()["pricing"]["input_mtok"]) > 0


def test_the_sdk_retrieves_a_model_with_a_slash_in_its_id(stack):
    model = stack.openai().models.retrieve("openai/gpt-4o-mini")
    assert model.id == "openai/gpt-4o-mini" and model.owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        stack.openai().models.retrieve("openai/gpt-0")


def test_a_bare_model_id_reaches_the_one_catalog_model_that_has_it(stack):
    raw = stack.openai().chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=PROMPT)

    record = stack.generation(raw.headers["x-meterway-request-id"])
    assert raw.parse().model == "openai/gpt-4o-mini" and record["model"] == "openai/gpt-4o-mini"
    assert stack.fake_requests()[-1]["body"]["model"] == "gpt-4o-mini"


def test_structured_output_is_parsed_through_the_gateway(stack):
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    completion = stack.openai().chat.completions.parse(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "A city, please."}], response_format=City
    )
    city = completion.choices[0].message.parsed
    assert isinstance(city, City) and isinstance(city.population, int)


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
def test_a_chat_tool_call_survives_the_gateway_on_every_provider(stack, model):
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
    ask = [{"role": "user", "content": "What is the weather in Paris? Use get_weather."}]
    first = stack.openai().chat.completions.create(model=model, messages=ask, tools=[tool])
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and "city" in call.function.arguments

    follow = [
        *ask,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18°C and sunny"},
    ]
    second = stack.openai().chat.completions.create(model=model, messages=follow, tools=[tool])
    assert "18°C and sunny" in second.choices[0].message.content
