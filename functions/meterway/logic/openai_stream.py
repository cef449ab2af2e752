"""OpenAI-compatible upstream chunks → the chunks the client sees.

Chunks keep their content but carry the gateway's request id and the client-facing model id.
The upstream's own usage chunk is held back: the core appends one usage chunk, with the cost,
for every provider alike.
"""

from __future__ import annotations

from typing import Any

from meterway.logic.usage import TokenUsage, from_openai


class OpenAIStreamAdapter:
    """Same interface as ``MessagesStreamTranslator``: ``feed`` events, then read the usage."""

    def __init__(self, *, model: str, request_id: str, created: int):
        self._model = model
        self._request_id = request_id
        self._created = created
        self._usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.output_chars = 0
        self.finished = False

    @property
    def usage(self) -> TokenUsage:
        return from_openai(self._usage or {})

    @property
    def raw_usage(self) -> dict[str, Any] | None:
        """The upstream's usage block as sent (OpenAI-shaped already, extra fields kept)."""
        return self._usage

    @property
    def usage_reported(self) -> bool:
        return self._usage is not None

    def feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        del event  # OpenAI streams carry no SSE event names
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

    def end_of_stream(self) -> None:
        """``data: [DONE]`` seen: the upstream finished cleanly."""
        self.finished = True


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
