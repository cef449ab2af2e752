"""Anthropic Messages clients on a Chat provider: the request translated to Chat, the answer and the
stream translated back to Messages (see ``request``, ``response`` and ``stream``)."""

from __future__ import annotations

from typing import Any

from meterway.proxy.formats.chat import read_usage
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format
from meterway.proxy.translate.base import Answer
from meterway.proxy.translate.messages_over_chat.request import messages_to_chat
from meterway.proxy.translate.messages_over_chat.response import chat_to_message
from meterway.proxy.translate.messages_over_chat.stream import ChatStreamTranslator


class MessagesOverChat:
    upstream: Format = "chat"

    def request(self, route: ModelRoute, body: dict[str, Any]) -> dict[str, Any]:
        return messages_to_chat(body, route)

    def answer(self, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> Answer:
        del created  # an Anthropic message has no timestamp
        body, output_chars = chat_to_message(payload, model=route.id, request_id=request_id)
        usage = payload.get("usage")
        return Answer(
            body=body,
            tokens=read_usage(usage) if isinstance(usage, dict) else None,
            output_chars=output_chars,
            finish_reason=body["stop_reason"],
        )

    def stream(self, route: ModelRoute, request_id: str, created: int) -> ChatStreamTranslator:
        del created
        return ChatStreamTranslator(model=route.id, request_id=request_id)
