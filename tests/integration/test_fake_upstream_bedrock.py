"""The fake Amazon Bedrock Runtime, driven by the real client: boto3 signs every request with
SigV4 and botocore parses the answers, the AWS event streams and the errors, so what passes
here is what a botocore-based gateway will read.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import httpx
import jsonschema
import pytest
from botocore.config import Config
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError

from devstack.fake_upstream import FakeUpstreamConfig, FakeUpstreamServer, count_tokens
from devstack.fake_upstream.eventstream import encode_message, event_message, exception_message

ACCESS_KEY, SECRET = "AKIAFAKEBEDROCK00001", "fake-bedrock-secret"
CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA = "amazon.nova-pro-v1:0"
VERSION = "bedrock-2023-05-31"
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city", "days"],
}
TOOL_CONFIG: Any = {
    "tools": [{"toolSpec": {"name": "get_weather", "description": "Forecast", "inputSchema": {"json": WEATHER_SCHEMA}}}]
}


# The module's fake upstream (tests/integration/conftest.py: fake_server): it checks SigV4 with these.
FAKE_CONFIG = FakeUpstreamConfig(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET)


def client_for(fake: FakeUpstreamServer, access_key: str = ACCESS_KEY, secret: str = SECRET) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=fake.base_url,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=10),
    )


@pytest.fixture
def bedrock(fake: FakeUpstreamServer) -> Any:
    return client_for(fake)


def claude_body(prompt: str = "hello", **extra: Any) -> str:
    body = {"anthropic_version": VERSION, "max_tokens": 300, "messages": [{"role": "user", "content": prompt}]}
    return json.dumps({**body, **extra})


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def chunks(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(event["chunk"]["bytes"]) for event in response["body"]]


def fault(fake: FakeUpstreamServer, **spec: Any) -> None:
    httpx.post(f"{fake.base_url}/_fake/faults", json={"faults": [spec]}).raise_for_status()


# --- Framing ----------------------------------------------------------------------------------------


def test_botocore_decodes_the_frames_and_checks_both_checksums() -> None:
    # Given an event and an exception framed by the fake
    frames = event_message("chunk", {"bytes": "e30="}, seed=3) + exception_message(
        "throttlingException", {"message": "slow"}
    )

    # When botocore's own parser reads them
    buffer = EventStreamBuffer()
    buffer.add_data(frames)
    event, error = list(buffer)

    # Then the headers and payloads are those sent (the padding field is extra JSON)
    assert event.headers == {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    assert json.loads(event.payload) == {"bytes": "e30=", "p": "abcd"}
    assert error.headers[":message-type"] == "exception" and error.headers[":exception-type"] == "throttlingException"
    assert json.loads(error.payload) == {"message": "slow"}
    # And a flipped payload byte fails the message checksum
    frame = bytearray(encode_message({":event-type": "chunk"}, b'{"a":1}'))
    frame[-6] ^= 1
    corrupted = EventStreamBuffer()
    corrupted.add_data(bytes(frame))
    with pytest.raises(ChecksumMismatch):
        list(corrupted)


# --- InvokeModel (Anthropic) ------------------------------------------------------------------------


def test_invoke_model_answers_anthropics_message_with_bedrocks_token_headers(
    fake: FakeUpstreamServer, bedrock: Any
) -> None:
    response = bedrock.invoke_model(modelId=CLAUDE, body=claude_body())

    message = json.loads(response["body"].read())
    assert message["type"] == "message" and message["id"].startswith("msg_bdrk_")
    assert message["model"] == "claude-sonnet-4-5-20250929" and message["stop_reason"] == "end_turn"
    assert message["usage"]["output_tokens"] == count_tokens(message["content"][0]["text"])
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert int(headers["x-amzn-bedrock-input-token-count"]) == message["usage"]["input_tokens"]
    assert int(headers["x-amzn-bedrock-output-token-count"]) == message["usage"]["output_tokens"]
    # And the request log has the model from the URL and the usage
    (record,) = fake.state.requests
    assert (record.path, record.model, record.stream, record.status) == (f"/model/{CLAUDE}/invoke", CLAUDE, False, 200)
    assert record.usage == message["usage"] and record.usage_reported


def test_the_stream_is_one_chunk_per_anthropic_event_ending_with_invocation_metrics(bedrock: Any) -> None:
    plain = json.loads(bedrock.invoke_model(modelId=CLAUDE, body=claude_body())["body"].read())

    response = bedrock.invoke_model_with_response_stream(modelId=CLAUDE, body=claude_body())
    events = chunks(response)

    assert response["contentType"] == "application/json"
    kinds = [event["type"] for event in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[3:-3]) == {"content_block_delta"}
    text = "".join(event["delta"]["text"] for event in events if event["type"] == "content_block_delta")
    assert text == plain["content"][0]["text"]
    assert events[-1]["amazon-bedrock-invocationMetrics"] == {
        "inputTokenCount": plain["usage"]["input_tokens"],
        "outputTokenCount": plain["usage"]["output_tokens"],
        "invocationLatency": 0,
        "firstByteLatency": 0,
        "cacheReadInputTokenCount": 0,
        "cacheWriteInputTokenCount": 0,
    }


def test_cache_control_on_bedrock_reports_cache_writes_then_reads(bedrock: Any) -> None:
    system = [{"type": "text", "text": "You are a careful assistant. " * 20, "cache_control": {"type": "ephemeral"}}]
    body = claude_body("hi", system=system)

    first = bedrock.invoke_model(modelId=CLAUDE, body=body)
    second = bedrock.invoke_model_with_response_stream(modelId=CLAUDE, body=body)

    written = json.loads(first["body"].read())["usage"]["cache_creation_input_tokens"]
    assert written > 0
    assert int(first["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-cache-write-input-token-count"]) == written
    metrics = chunks(second)[-1]["amazon-bedrock-invocationMetrics"]
    assert (metrics["cacheReadInputTokenCount"], metrics["cacheWriteInputTokenCount"]) == (written, 0)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (claude_body(model="claude-sonnet-4-5"), "extraneous key [model] is not permitted"),
        (claude_body(stream=True), "extraneous key [stream] is not permitted"),
        (json.dumps({"max_tokens": 10, "messages": user("hi")}), "required key [anthropic_version] not found"),
        (claude_body(max_tokens=0), "max_tokens"),
    ],
)
def test_bodies_bedrock_refuses_are_validation_exceptions(bedrock: Any, body: str, words: str) -> None:
    with pytest.raises(bedrock.exceptions.ValidationException) as error:
        bedrock.invoke_model(modelId=CLAUDE, body=body)
    assert words in error.value.response["Error"]["Message"]


def test_model_ids_may_be_inference_profile_arns(fake: FakeUpstreamServer, bedrock: Any) -> None:
    # An ARN has a "/" and ":" that botocore escapes in the path; the signature covers the escaped path
    arn = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{CLAUDE}"

    message = json.loads(bedrock.invoke_model(modelId=arn, body=claude_body())["body"].read())

    assert message["model"] == "claude-sonnet-4-5-20250929"
    assert fake.state.requests[0].model == arn


# --- Converse ---------------------------------------------------------------------------------------


def test_converse_answers_text_with_usage_and_metrics(fake: FakeUpstreamServer, bedrock: Any) -> None:
    response = bedrock.converse(
        modelId=NOVA,
        system=[{"text": "Be brief."}],
        messages=user("hello"),
        inferenceConfig={"maxTokens": 500, "temperature": 0.2},
    )

    (block,) = response["output"]["message"]["content"]
    assert response["output"]["message"]["role"] == "assistant" and response["stopReason"] == "end_turn"
    usage = response["usage"]
    assert usage["outputTokens"] == count_tokens(block["text"])
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert (usage["cacheReadInputTokens"], usage["cacheWriteInputTokens"]) == (0, 0)
    assert response["metrics"]["latencyMs"] >= 0
    assert fake.state.requests[0].usage == usage


def test_converse_stream_events_come_in_bedrocks_order(bedrock: Any) -> None:
    plain = bedrock.converse(modelId=NOVA, messages=user("hello"), inferenceConfig={"maxTokens": 500})

    events = list(
        bedrock.converse_stream(modelId=NOVA, messages=user("hello"), inferenceConfig={"maxTokens": 500})["stream"]
    )

    kinds = [next(iter(event)) for event in events]
    assert kinds[0] == "messageStart" and kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    assert set(kinds[1:-3]) == {"contentBlockDelta"}
    text = "".join(event["contentBlockDelta"]["delta"]["text"] for event in events[1:-3])
    assert text == plain["output"]["message"]["content"][0]["text"]
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    assert events[-1]["metadata"]["usage"] == plain["usage"]


def test_converse_tool_use_round_trip(bedrock: Any) -> None:
    # When the user names the offered tool
    first = bedrock.converse(modelId=NOVA, messages=user("Use get_weather for Paris."), toolConfig=TOOL_CONFIG)

    # Then the model calls it with input that fits its schema
    assert first["stopReason"] == "tool_use"
    (call,) = [block["toolUse"] for block in first["output"]["message"]["content"]]
    assert call["name"] == "get_weather" and call["toolUseId"].startswith("tooluse_")
    jsonschema.validate(call["input"], WEATHER_SCHEMA)
    # And once the result comes back, it answers with it
    result = {"toolResult": {"toolUseId": call["toolUseId"], "content": [{"json": {"forecast": "sunny"}}]}}
    history = [*user("Use get_weather for Paris."), first["output"]["message"], {"role": "user", "content": [result]}]
    second = bedrock.converse(modelId=NOVA, messages=history, toolConfig=TOOL_CONFIG)
    assert second["stopReason"] == "end_turn"
    assert "get_weather tool returned" in second["output"]["message"]["content"][0]["text"]
    assert "sunny" in second["output"]["message"]["content"][0]["text"]


def test_converse_stream_tool_use_opens_a_block_and_streams_its_input(bedrock: Any) -> None:
    request: Any = {"modelId": NOVA, "messages": user("Use get_weather."), "toolConfig": TOOL_CONFIG}
    plain = bedrock.converse(**request)

    events = list(bedrock.converse_stream(**request)["stream"])

    kinds = [next(iter(event)) for event in events]
    assert kinds[:2] == ["messageStart", "contentBlockStart"]
    assert kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    start = events[1]["contentBlockStart"]
    assert start["contentBlockIndex"] == 0 and start["start"]["toolUse"]["name"] == "get_weather"
    pieces = [event["contentBlockDelta"]["delta"]["toolUse"]["input"] for event in events[2:-3]]
    assert json.loads("".join(pieces)) == plain["output"]["message"]["content"][0]["toolUse"]["input"]
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == len(pieces)


def test_cache_points_write_then_read_the_prefix(bedrock: Any) -> None:
    system = [{"text": "Answer like a ship's captain. " * 20}, {"cachePoint": {"type": "default"}}]

    first = bedrock.converse(modelId=NOVA, system=system, messages=user("hi"))["usage"]
    second = bedrock.converse(modelId=NOVA, system=system, messages=user("hello"))["usage"]

    assert first["cacheWriteInputTokens"] > 0 and first["cacheReadInputTokens"] == 0
    assert (second["cacheReadInputTokens"], second["cacheWriteInputTokens"]) == (first["cacheWriteInputTokens"], 0)
    assert second["totalTokens"] == second["inputTokens"] + second["outputTokens"] + second["cacheReadInputTokens"]


def test_converse_validation_in_bedrocks_words(bedrock: Any) -> None:
    assistant_first = [{"role": "assistant", "content": [{"text": "hi"}]}]
    with pytest.raises(bedrock.exceptions.ValidationException, match="must start with a user message"):
        bedrock.converse(modelId=NOVA, messages=assistant_first)
    use = {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {}}}
    no_tools = [*user("hi"), {"role": "assistant", "content": [use]}, *user("go on")]
    with pytest.raises(bedrock.exceptions.ValidationException, match="toolConfig field must be defined"):
        bedrock.converse(modelId=NOVA, messages=no_tools)


# --- Errors and faults ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, "ValidationException"),
        (403, "AccessDeniedException"),
        (404, "ResourceNotFoundException"),
        (408, "ModelTimeoutException"),
        (429, "ThrottlingException"),
        (500, "InternalServerException"),
        (503, "ServiceUnavailableException"),
    ],
)
def test_injected_statuses_are_bedrocks_exceptions(
    fake: FakeUpstreamServer, bedrock: Any, status: int, exception: str
) -> None:
    fault(fake, kind="status", status=status, match={"model": NOVA})
    fault(fake, kind="status", status=status, match={"model": CLAUDE})

    with pytest.raises(getattr(bedrock.exceptions, exception)) as converse_error:
        bedrock.converse(modelId=NOVA, messages=user("hi"))
    with pytest.raises(getattr(bedrock.exceptions, exception)):
        bedrock.invoke_model_with_response_stream(modelId=CLAUDE, body=claude_body())

    assert converse_error.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert converse_error.value.response["Error"]["Message"]


def test_a_stream_error_is_a_model_stream_error_exception_after_the_tokens_sent(
    fake: FakeUpstreamServer, bedrock: Any
) -> None:
    fault(fake, kind="stream_error", after_tokens=3, message="Model overloaded mid-stream")
    fault(fake, kind="stream_error", after_tokens=2)

    received: list[dict[str, Any]] = []
    invoke_stream = bedrock.invoke_model_with_response_stream(modelId=CLAUDE, body=claude_body())["body"]
    with pytest.raises(EventStreamError) as invoke_error:
        received.extend(json.loads(event["chunk"]["bytes"]) for event in invoke_stream)
    converse_events: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError) as converse_error:
        converse_events.extend(bedrock.converse_stream(modelId=NOVA, messages=user("hi"))["stream"])

    # The tokens before the error arrive, then the error
    assert [event["type"] for event in received].count("content_block_delta") == 3
    assert [next(iter(event)) for event in converse_events].count("contentBlockDelta") == 2
    # botocore names it by the event's :exception-type, the stream member's name, as it does for real Bedrock
    assert invoke_error.value.response["Error"] == {
        "Code": "modelStreamErrorException",
        "Message": "Model overloaded mid-stream",
    }
    assert converse_error.value.response["Error"]["Code"] == "modelStreamErrorException"
    # The request log bills what went out before the error
    invoke_record, converse_record = fake.state.requests
    assert invoke_record.usage is not None and invoke_record.usage["output_tokens"] == 3
    assert converse_record.usage is not None and converse_record.usage["outputTokens"] == 2


def test_cut_and_malformed_answers_fail_in_the_client(fake: FakeUpstreamServer, bedrock: Any) -> None:
    fault(fake, kind="cut", after_tokens=2)
    fault(fake, kind="malformed")

    with pytest.raises(Exception) as cut:  # urllib3's, wrapped differently per version
        list(bedrock.converse_stream(modelId=NOVA, messages=user("hi"))["stream"])
    broken = bedrock.invoke_model(modelId=CLAUDE, body=claude_body())["body"].read()

    assert not isinstance(cut.value, ClientError)
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)


# --- Signatures -------------------------------------------------------------------------------------


def test_requests_must_be_signed_for_bedrock(fake: FakeUpstreamServer) -> None:
    # An unsigned request is refused as AWS refuses it
    unsigned = httpx.post(f"{fake.base_url}/model/{NOVA}/converse", json={"messages": user("hi")})
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"].startswith("UnrecognizedClientException:")
    assert set(unsigned.json()) == {"message"}
    # And so is one signed with another secret, or by another access key
    with pytest.raises(ClientError) as wrong_secret:
        client_for(fake, secret="not-the-secret").converse(modelId=NOVA, messages=user("hi"))
    with pytest.raises(ClientError) as wrong_key:
        client_for(fake, access_key="AKIAOTHERKEY00000000").converse(modelId=NOVA, messages=user("hi"))
    assert wrong_secret.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert wrong_key.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert [record.status for record in fake.state.requests] == [403, 403, 403]


def test_the_signature_covers_the_body(fake: FakeUpstreamServer, bedrock: Any) -> None:
    # Given a request signed by botocore whose body is changed after signing
    def tamper(request: Any, **_: Any) -> None:
        request.body = request.body.replace(b"hello", b"HELLO")

    bedrock.meta.events.register_last("before-send.bedrock-runtime.Converse", tamper)

    with pytest.raises(ClientError) as error:
        bedrock.converse(modelId=NOVA, messages=user("hello"))

    assert error.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_a_prompt_too_long_is_bedrocks_validation_exception(fake: FakeUpstreamServer, bedrock: Any) -> None:
    fault(fake, kind="context_length")
    fault(fake, kind="context_length")

    with pytest.raises(bedrock.exceptions.ValidationException, match="Input is too long for requested model"):
        bedrock.converse(modelId=NOVA, messages=user("hi"))
    with pytest.raises(bedrock.exceptions.ValidationException, match="Input is too long for requested model"):
        bedrock.invoke_model(modelId=CLAUDE, body=claude_body())
    assert [record.usage for record in fake.state.requests] == [None, None]
