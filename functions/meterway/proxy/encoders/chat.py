"""The OpenAI Chat Completions wire format, as the client reads it from the gateway.

A non-streamed answer is a ``chat.completion`` whose ``usage`` carries the cost. A stream is
server-sent events with ``data:`` lines only: the chunks as they come, then one usage chunk
(``choices: []``) with the cost, then ``[DONE]``; an error mid-stream is an event holding the
error envelope.
"""

from __future__ import annotations

import json
from typing import Any

from meterway.core.errors import MeterwayError
from meterway.ledger.models import TokenUsage, UsageRecord

DONE = b"data: [DONE]\n\n"


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


def usage_block(record: UsageRecord, provider_usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The client's ``usage``: the provider's own block when Chat-shaped, plus ``cost`` in USD."""
    block = dict(provider_usage) if provider_usage else openai_usage(record.tokens)
    block["cost"] = float(record.cost_usd)
    if record.usage_estimated:
        block["estimated"] = True
    return block


class ChatEncoder:
    """Frames one request's output in the Chat format (see the module's docstring)."""

    def __init__(self, record: UsageRecord, model: str, created: int):
        self._record, self._model, self._created = record, model, created

    def answer(self, body: dict[str, Any], provider_usage: dict[str, Any] | None) -> dict[str, Any]:
        """The ``chat.completion`` the client gets, with its priced ``usage``."""
        return body | {"usage": usage_block(self._record, provider_usage)}

    def event(self, chunk: dict[str, Any]) -> bytes:
        return _sse(chunk)

    def closing(self, provider_usage: dict[str, Any] | None) -> tuple[bytes, ...]:
        """The usage chunk, priced, and the end marker."""
        usage_chunk = {
            "id": self._record.request_id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [],
            "usage": usage_block(self._record, provider_usage),
        }
        return _sse(usage_chunk), DONE

    def error(self, error: MeterwayError) -> bytes:
        return _sse(error.envelope())


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
