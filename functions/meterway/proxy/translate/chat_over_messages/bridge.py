"""Chat clients on a Messages provider: the request translated to Messages, the answer and the
stream translated back to Chat (see ``request`` and ``response``)."""

from __future__ import annotations

from typing import Any

from meterway.proxy.formats.messages import anthropic_token_usage
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format
from meterway.proxy.translate.base import Answer
from meterway.proxy.translate.chat_over_messages.request import chat_to_messages
from meterway.proxy.translate.chat_over_messages.response import MessagesStreamTranslator, messages_to_chat


class ChatOverMessages:
    upstream: Format = "messages"

    def request(self, route: ModelRoute, body: dict[str, Any]) -> dict[str, Any]:
        return chat_to_messages(body, route.upstream_model)

    def answer(self, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> Answer:
        body = messages_to_chat(payload, model=route.id, request_id=request_id, created=created)
        return Answer(
            body=body,
            tokens=anthropic_token_usage(payload.get("usage") or {}),
            finish_reason=body["choices"][0]["finish_reason"],
        )

    def stream(self, route: ModelRoute, request_id: str, created: int) -> MessagesStreamTranslator:
        return MessagesStreamTranslator(model=route.id, request_id=request_id, created=created)
