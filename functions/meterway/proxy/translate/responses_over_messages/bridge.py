"""Responses clients on a Messages provider: the request translated to Messages, the answer and the
stream translated back to Responses (see ``request``, ``response`` and ``stream``)."""

from __future__ import annotations

from typing import Any

from meterway.proxy.formats.messages import anthropic_token_usage
from meterway.proxy.formats.responses import output_chars
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format
from meterway.proxy.translate.base import Answer
from meterway.proxy.translate.responses_over_messages.request import responses_to_messages
from meterway.proxy.translate.responses_over_messages.response import finish_reason, messages_to_response
from meterway.proxy.translate.responses_over_messages.stream import ResponsesStreamTranslator


class ResponsesOverMessages:
    upstream: Format = "messages"

    def request(self, route: ModelRoute, body: dict[str, Any]) -> dict[str, Any]:
        return responses_to_messages(body, route.upstream_model)

    def answer(self, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> Answer:
        body = messages_to_response(payload, model=route.id, request_id=request_id, created=created)
        return Answer(
            body=body,
            tokens=anthropic_token_usage(payload.get("usage") or {}),
            output_chars=output_chars(body["output"]),
            finish_reason=finish_reason(payload.get("stop_reason")) or "completed",
        )

    def stream(self, route: ModelRoute, request_id: str, created: int) -> ResponsesStreamTranslator:
        return ResponsesStreamTranslator(model=route.id, request_id=request_id, created=created)
