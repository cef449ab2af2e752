"""OpenAI Chat Completions: the request clients send, the usage OpenAI reports, the pass-through to
a provider that speaks it, and how the gateway's answers and streams look to the client.

A non-streamed answer is a ``chat.completion`` whose ``usage`` carries the cost. A stream is
server-sent events with ``data:`` lines only: the chunks as they come, then one usage chunk
(``choices: []``) with the cost, then ``[DONE]``; an error mid-stream is an event holding the
error envelope.
"""

from __future__ import annotations

from typing import Any, ClassVar

from meterway.core.errors import MeterwayError
from meterway.ledger.models import TokenUsage, UsageRecord
from meterway.proxy.formats.base import (
    Choices,
    Int64,
    Messages,
    OpenAIDoorRequest,
    OutputTokens,
    data_event,
    event_data,
    invalid_field,
)
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format
from meterway.proxy.translate.base import Answer, upstream_error

DONE = "[DONE]"


class ChatCompletionRequest(OpenAIDoorRequest, kw_only=True):
    OUTPUT_LIMITS: ClassVar[tuple[str, ...]] = ("max_tokens", "max_completion_tokens")

    messages: Messages
    stream_options: dict[str, Any] | None = None
    max_tokens: OutputTokens | None = None
    max_completion_tokens: OutputTokens | None = None
    n: Choices | None = None
    logprobs: bool | None = None
    seed: Int64 | None = None

    def __post_init__(self) -> None:
        for index, message in enumerate(self.messages):
            if not isinstance(message.get("role"), str):
                raise invalid_field("messages", f"messages[{index}] has no 'role'")


def read_usage(usage: dict[str, Any]) -> TokenUsage:
    """Normalise an OpenAI ``usage`` object (chat completions or embeddings).

    ``prompt_tokens`` includes ``prompt_tokens_details.cached_tokens``; OpenAI reports no cache
    writes. ``completion_tokens`` includes ``completion_tokens_details.reasoning_tokens``.
    """
    prompt = _count(usage.get("prompt_tokens"))
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cached = min(_count(prompt_details.get("cached_tokens")), prompt)
    output = _count(usage.get("completion_tokens"))
    return TokenUsage(
        input_tokens=prompt - cached,
        output_tokens=output,
        reasoning_tokens=min(_count(completion_details.get("reasoning_tokens")), output),
        cache_read_tokens=cached,
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def openai_usage(u: TokenUsage) -> dict[str, Any]:
    """Render normalised usage as OpenAI's ``usage`` object.

    ``prompt_tokens`` counts every prompt token (base input + cache writes + cache reads), as OpenAI's
    does; ``cache_write_tokens`` is OpenRouter's extension for the writes.
    """
    prompt_tokens = u.input_tokens + u.cache_creation_tokens + u.cache_read_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt_tokens + u.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_creation_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def usage_block(record: UsageRecord, client_usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The client's ``usage``: the provider's own block when Chat-shaped, plus ``cost`` in USD."""
    block = dict(client_usage) if client_usage else openai_usage(record.tokens)
    block["cost"] = float(record.cost_usd)
    if record.usage_estimated:
        block["estimated"] = True
    return block


class ChatEncoder:
    """Frames one request's output in the Chat format (see the module's docstring)."""

    def __init__(self, record: UsageRecord, model: str, created: int):
        self._record, self._model, self._created = record, model, created

    def answer(self, body: dict[str, Any], client_usage: dict[str, Any] | None) -> dict[str, Any]:
        return body | {"usage": usage_block(self._record, client_usage)}

    def carries_usage(self, event: dict[str, Any]) -> bool:
        del event  # Chat's usage chunk is the encoder's own, at the end
        return False

    def event(self, event: dict[str, Any]) -> bytes:
        return data_event(event)

    def closing(self, client_usage: dict[str, Any] | None) -> tuple[bytes, ...]:
        usage_chunk = {
            "id": self._record.request_id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [],
            "usage": usage_block(self._record, client_usage),
        }
        return data_event(usage_chunk), f"data: {DONE}\n\n".encode()

    def error(self, error: MeterwayError) -> bytes:
        return data_event(error.envelope())


class ChatPassThrough:
    """Chat clients on a provider that speaks Chat: the request goes through as sent, but for the
    upstream's model id and the usage chunk the gateway always asks for; answers and chunks keep
    their content but carry the gateway's request id and the client-facing model id."""

    upstream: Format = "chat"

    def request(self, route: ModelRoute, body: dict[str, Any]) -> dict[str, Any]:
        upstream = dict(body)
        upstream["model"] = route.upstream_model
        if body.get("stream"):
            # The gateway always asks for the usage chunk itself: a stream without it cannot be metered.
            upstream["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return upstream

    def answer(self, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> Answer:
        del created  # the upstream's own timestamp stands
        usage = payload.get("usage")
        choices = payload.get("choices") or [{}]
        return Answer(
            body=payload | {"id": request_id, "model": route.id},
            tokens=read_usage(usage) if isinstance(usage, dict) else None,
            output_chars=_message_chars(payload),
            finish_reason=choices[0].get("finish_reason"),
            client_usage=usage if isinstance(usage, dict) else None,
        )

    def stream(self, route: ModelRoute, request_id: str, created: int) -> ChatChunks:
        return ChatChunks(model=route.id, request_id=request_id, created=created)


class ChatChunks:
    """An upstream's Chat chunks for a Chat client (see ``StreamAdapter``). The upstream's own usage
    chunk is held back: the encoder appends one, with the cost."""

    def __init__(self, *, model: str, request_id: str, created: int):
        self._model = model
        self._request_id = request_id
        self._created = created
        self._usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.output_chars = 0
        self.finished = False
        self.ended = False

    @property
    def usage(self) -> TokenUsage:
        return read_usage(self._usage or {})

    @property
    def client_usage(self) -> dict[str, Any] | None:
        """The upstream's usage block as sent (Chat-shaped already, extra fields kept)."""
        return self._usage

    @property
    def usage_reported(self) -> bool:
        return self._usage is not None

    def feed(self, event: str, data: str) -> list[dict[str, Any]]:
        del event  # OpenAI streams carry no SSE event names
        if data == DONE:
            # The upstream finished cleanly; nothing follows the marker.
            self.finished = self.ended = True
            return []
        return self._chunk(event_data(data))

    def _chunk(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        if data.get("error"):
            # The provider failed mid-answer and says why in a chunk of its own: the stream ends here.
            raise upstream_error(data["error"])
        if isinstance(data.get("usage"), dict):
            self._usage = data["usage"]
        choices = data.get("choices") or []
        if not choices:
            # The usage chunk (``choices: []``) marks the end of a stream that asked for usage.
            self.finished = self.finished or self._usage is not None
            return []
        for choice in choices:
            self.output_chars += delta_chars(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        chunk = {name: value for name, value in data.items() if name != "usage"}
        chunk |= {"id": self._request_id, "model": self._model, "created": self._created}
        return [chunk]


def delta_chars(delta: dict[str, Any]) -> int:
    """Characters of text, reasoning and tool arguments in one chunk's ``delta``."""
    count = 0
    for name in ("content", "reasoning", "reasoning_content", "refusal"):
        value = delta.get(name)
        if isinstance(value, str):
            count += len(value)
    for call in delta.get("tool_calls") or []:
        arguments = (call.get("function") or {}).get("arguments")
        if isinstance(arguments, str):
            count += len(arguments)
    return count


def _message_chars(payload: dict[str, Any]) -> int:
    total = 0
    for choice in payload.get("choices") or []:
        content = (choice.get("message") or {}).get("content")
        total += len(content) if isinstance(content, str) else 0
    return total
