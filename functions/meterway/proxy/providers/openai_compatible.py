"""OpenAI and any OpenAI-compatible API: the Chat format spoken natively.

The request goes through as the client sent it, but for the upstream's model id and the usage
chunk the gateway always asks for. Answers and chunks keep their content but carry the gateway's
request id and the client-facing model id. The upstream's own usage chunk is held back: the
encoder appends one usage chunk, with the cost, for every provider alike.
"""

from __future__ import annotations

import json
from typing import Any

from meterway.core.errors import UpstreamError
from meterway.ledger.models import TokenUsage
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import UpstreamRequest
from meterway.proxy.providers.base import ChatAnswer, error_message, status_error

DONE = "[DONE]"


class OpenAICompatible:
    """A Chat Completions API at ``base_url`` (``https://api.openai.com/v1``), keyed by Bearer."""

    def __init__(self, base_url: str, api_key: str | None):
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key

    def chat_request(self, route: ModelRoute, body: dict[str, Any]) -> UpstreamRequest:
        upstream = dict(body)
        upstream["model"] = route.upstream_model
        if body.get("stream"):
            # The gateway always asks for the usage chunk itself: a stream without it cannot be metered.
            upstream["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        headers = {"accept": "text/event-stream" if body.get("stream") else "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return UpstreamRequest(f"{self._base_url}/chat/completions", upstream, headers)

    def chat_answer(self, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> ChatAnswer:
        del created  # the upstream's own timestamp stands
        usage = payload.get("usage")
        choices = payload.get("choices") or [{}]
        return ChatAnswer(
            body=payload | {"id": request_id, "model": route.id},
            tokens=token_usage(usage) if isinstance(usage, dict) else None,
            output_chars=_message_chars(payload),
            finish_reason=choices[0].get("finish_reason"),
            chat_usage=usage if isinstance(usage, dict) else None,
        )

    def chat_stream(self, route: ModelRoute, request_id: str, created: int) -> ChatChunks:
        return ChatChunks(model=route.id, request_id=request_id, created=created)

    def error(self, status: int, body: bytes, retry_after: str | None) -> UpstreamError:
        return status_error(status, error_message(body), retry_after)


def token_usage(usage: dict[str, Any]) -> TokenUsage:
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


class ChatChunks:
    """The upstream's chunks for the client (see ``StreamAdapter``)."""

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
        return token_usage(self._usage or {})

    @property
    def chat_usage(self) -> dict[str, Any] | None:
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
        return self._chunk(json.loads(data))

    def _chunk(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        if isinstance(data.get("usage"), dict):
            self._usage = data["usage"]
        choices = data.get("choices") or []
        if not choices:
            # The usage chunk (``choices: []``) marks the end of a stream that asked for usage.
            self.finished = self.finished or self._usage is not None
            return []
        for choice in choices:
            self.output_chars += _delta_chars(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        chunk = {name: value for name, value in data.items() if name != "usage"}
        chunk |= {"id": self._request_id, "model": self._model, "created": self._created}
        return [chunk]


def _delta_chars(delta: dict[str, Any]) -> int:
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
