"""Every wait on an upstream ends: a first byte that never comes, a stream that stalls, a stream
that would outlive the function, and a provider's own error event inside a 200 stream. Each ends
with the right status or error event, in the client's format, and one record that says why.

The shared stack gives each wait 2 s (tests/e2e/conftest.py); the fake upstream injects the faults.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.e2e.sdk_streams import stream_to_its_error

pytestmark = pytest.mark.e2e

PROMPT = "Count from one to twenty, in words."


@dataclass(frozen=True)
class Door:
    path: str
    model: str
    body: dict[str, Any]

    def request(self, *, stream: bool) -> dict[str, Any]:
        return {"model": self.model, **self.body, "stream": stream}

    def error_of(self, events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """The error event that ended the stream, as the client's SDK reads it."""
        name, data = events[-1]
        if self.path == "/v1/messages":
            assert name == "error" and data["type"] == "error"
            return {"code": None, **data["error"]}
        if self.path == "/v1/responses":
            assert name == "error" and data["type"] == "error"
            return data
        assert "error" in data, events[-1]
        return dict(data["error"])


DOORS = {
    "chat": Door("/v1/chat/completions", "openai/gpt-4o-mini", {"messages": [{"role": "user", "content": PROMPT}]}),
    "messages": Door(
        "/v1/messages",
        "anthropic/claude-sonnet-4-5",
        {"max_tokens": 200, "messages": [{"role": "user", "content": PROMPT}]},
    ),
    "responses": Door("/v1/responses", "openai/gpt-4o-mini", {"input": PROMPT}),
}


def _stream(stack, door: Door, headers: dict[str, str] | None = None) -> tuple[str, list[tuple[str, Any]], float]:
    """Stream a request through the gateway: its request id, its events, and how long it took."""
    started = time.monotonic()
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(
            client,
            "POST",
            f"{stack.base}{door.path}",
            json=door.request(stream=True),
            headers={"authorization": f"Bearer {stack.api_key}", **(headers or {})},
        ) as source,
    ):
        assert source.response.status_code == 200
        request_id = source.response.headers["x-meterway-request-id"]
        events = [
            (event.event, json.loads(event.data)) for event in source.iter_sse() if event.data not in ("", "[DONE]")
        ]
    return request_id, events, time.monotonic() - started


@pytest.mark.parametrize("door", DOORS.values(), ids=DOORS)
def test_a_stream_that_stalls_is_ended_after_the_idle_timeout_and_recorded_partial(stack, door):
    stack.fake_faults({"kind": "stall", "after_tokens": 2, "seconds": 30}, path=door.path)

    request_id, events, took = _stream(stack, door)

    # The client hears why at 2 s, not after the provider's 30 s of silence
    assert 2 <= took < 10
    error = door.error_of(events)
    assert "sent nothing for 2 s" in error["message"]
    record = stack.generation(request_id)
    assert (record["status"], record["error_code"]) == ("partial", "upstream_stalled")
    # What the provider had sent is billed: the tokens before the stall, estimated from the text
    assert record["output_tokens"] >= 2 and record["usage_estimated"]


@pytest.mark.parametrize(
    ("door", "stream"),
    [*((door, False) for door in DOORS.values()), (DOORS["chat"], True)],
    ids=[*DOORS, "chat-stream"],
)
def test_an_answer_that_never_starts_is_a_504_and_an_error_record_that_bills_nothing(stack, door, stream):
    stack.fake_faults({"kind": "timeout", "seconds": 30}, path=door.path)
    started = time.monotonic()

    response = httpx.post(
        f"{stack.base}{door.path}",
        json=door.request(stream=stream),
        headers={"authorization": f"Bearer {stack.api_key}"},
        timeout=30,
    )

    # A stream has not started either: the client gets a status, in its own envelope
    assert 2 <= time.monotonic() - started < 10
    assert response.status_code == 504
    assert "did not start answering within 2 s" in response.json()["error"]["message"]
    record = stack.generation(response.headers["x-meterway-request-id"])
    assert (record["status"], record["error_code"], record["cost_usd"]) == ("error", "upstream_timeout", 0)


@pytest.mark.parametrize("door", DOORS.values(), ids=DOORS)
def test_a_stream_that_would_outlive_the_function_is_ended_and_settled_before_its_deadline(stack, door):
    # Given an invocation whose function stops 11.5 s from now (the Lambda Web Adapter's context),
    # 10 s of which the gateway keeps for settling, and a provider that goes silent for 30 s
    deadline_ms = int((time.time() + 11.5) * 1000)
    stack.fake_faults({"kind": "stall", "after_tokens": 1, "seconds": 30}, path=door.path)

    request_id, events, took = _stream(stack, door, {"x-amzn-lambda-context": json.dumps({"deadline": deadline_ms})})

    # Then the stream ends within its 1.5 s, before the idle timeout, with its record settled
    assert took < 2.0
    assert "time limit" in door.error_of(events)["message"]
    record = stack.generation(request_id)
    assert (record["status"], record["error_code"]) == ("partial", "time_limit_reached")
    assert time.time() * 1000 < deadline_ms


@pytest.mark.parametrize("door", DOORS.values(), ids=DOORS)
def test_a_providers_error_event_inside_a_200_stream_reaches_the_client_and_bills_what_was_sent(stack, door):
    stack.fake_faults(
        {"kind": "stream_error", "after_tokens": 3, "message": "The model is overloaded."}, path=door.path
    )

    request_id, events, _ = _stream(stack, door)

    error = door.error_of(events)
    assert "overloaded" in error["message"].lower()
    record = stack.generation(request_id)
    assert record["status"] == "partial"
    assert record["output_tokens"] >= 3
    # Exactly one record for the request, and the fake upstream served it exactly once
    served = [
        entry for entry in stack.fake_requests() if entry.get("fault") and entry["fault"]["kind"] == "stream_error"
    ]
    assert served[-1]["status"] == 200


@pytest.mark.parametrize("door", DOORS)
def test_each_sdk_hears_why_a_stalled_stream_ended_and_the_partial_answer_is_billed(stack, door):
    stack.fake_faults({"kind": "stall", "after_tokens": 2, "seconds": 30}, path=DOORS[door].path)
    started = time.monotonic()

    request_id, said = stream_to_its_error(stack, door, DOORS[door].model, PROMPT)

    assert "sent nothing for 2 s" in said
    assert 2 <= time.monotonic() - started < 10
    record = stack.generation(request_id)
    assert (record["status"], record["error_code"]) == ("partial", "upstream_stalled")
    assert record["output_tokens"] >= 2
