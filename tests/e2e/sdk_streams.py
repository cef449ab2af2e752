"""A streamed request through one front door with that door's official SDK, read until the
stream's error: how a client hears that its stream ended before the answer did."""

from __future__ import annotations

import anthropic
import openai
import pytest


def stream_to_its_error(stack, door: str, model: str, prompt: str) -> tuple[str, str]:
    """Stream ``prompt`` to ``model`` through ``door`` (messages, chat or responses), reading to the
    end: the request id, and what the SDK says ended the stream."""
    messages = [{"role": "user", "content": prompt}]
    if door == "messages":
        claude = anthropic.Anthropic(base_url=stack.base, api_key=stack.api_key, max_retries=0)
        with claude.messages.stream(model=model, max_tokens=200, messages=messages) as stream:
            # The SDK raises the stream's error event
            with pytest.raises(anthropic.APIStatusError) as raised:
                stream.until_done()
            return stream.response.headers["x-meterway-request-id"], str(raised.value)
    client = stack.openai()
    if door == "chat":
        chunks = client.chat.completions.create(model=model, stream=True, messages=messages)
        with pytest.raises(openai.APIError) as failed:
            for _ in chunks:
                pass
        return chunks.response.headers["x-meterway-request-id"], str(failed.value)
    # Responses: the SDK hands the error event to the caller, the last one of the stream
    events = client.responses.create(model=model, stream=True, input=prompt)
    last = list(events)[-1]
    assert last.type == "error", last
    return events.response.headers["x-meterway-request-id"], str(last.message)
