"""Anthropic's Messages API, reached from the Chat format by translation both ways.

Anthropic models are called through their native ``POST /v1/messages`` so that prompt caching,
thinking and the 5-minute/1-hour cache split stay visible to metering.
"""

from __future__ import annotations

from typing import Any

from meterway.core.errors import UpstreamError
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import UpstreamRequest
from meterway.proxy.providers.anthropic.chat_to_messages import chat_to_messages
from meterway.proxy.providers.anthropic.messages_to_chat import (
    MessagesStreamTranslator,
    anthropic_token_usage,
    messages_to_chat,
)
from meterway.proxy.providers.base import ChatAnswer, error_message, status_error


class Anthropic:
    """The Messages API at ``base_url`` (``https://api.anthropic.com``), keyed by ``x-api-key``."""

    def __init__(self, base_url: str, api_key: str | None, version: str):
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._version = version

    def chat_request(self, route: ModelRoute, body: dict[str, Any]) -> UpstreamRequest:
        headers = {
            "anthropic-version": self._version,
            "accept": "text/event-stream" if body.get("stream") else "application/json",
        }
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return UpstreamRequest(f"{self._base_url}/v1/messages", chat_to_messages(body, route.upstream_model), headers)

    def chat_answer(self, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> ChatAnswer:
        body = messages_to_chat(payload, model=route.id, request_id=request_id, created=created)
        return ChatAnswer(
            body=body,
            tokens=anthropic_token_usage(payload.get("usage") or {}),
            finish_reason=body["choices"][0]["finish_reason"],
        )

    def chat_stream(self, route: ModelRoute, request_id: str, created: int) -> MessagesStreamTranslator:
        return MessagesStreamTranslator(model=route.id, request_id=request_id, created=created)

    def error(self, status: int, body: bytes, retry_after: str | None) -> UpstreamError:
        return status_error(status, error_message(body), retry_after)
