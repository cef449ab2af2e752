"""OpenAI ``POST /v1/embeddings`` with deterministic vectors."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .common import begin, is_int, log_reply, logged, new_id
from .openai_api import OPENAI
from .tokens import count_tokens, embedding_vector, encode_base64_floats

DEFAULT_DIMENSIONS = 8


def _inputs(raw: Any) -> list[tuple[str, int]] | None:
    """(text used for the vector, token count) per input, or None when the input is invalid.

    Inputs may be a string, a list of strings, a list of token ids or a list of token id lists.
    """
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        return None
    if all(is_int(item, 0) for item in raw):
        raw = [raw]
    items: list[tuple[str, int]] = []
    for item in raw:
        if isinstance(item, str):
            items.append((item, count_tokens(item)))
        elif isinstance(item, list) and item and all(is_int(token, 0) for token in item):
            items.append((" ".join(map(str, item)), len(item)))
        else:
            return None
    return items


@logged
async def embeddings(request: Request) -> Response:
    """``POST /v1/embeddings``."""
    exchange = await begin(request, OPENAI)
    if isinstance(exchange, Response):
        return exchange
    body = exchange.body
    if not isinstance(body.get("model"), str) or not body["model"]:
        return OPENAI.error(400, "you must provide a model parameter", param="model")
    items = _inputs(body.get("input"))
    if items is None:
        return OPENAI.error(400, "'input' must be a non-empty string or array of strings.", param="input")
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    if not is_int(dimensions):
        return OPENAI.error(400, "Invalid 'dimensions': integer below minimum value 1.", param="dimensions")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        return OPENAI.error(400, "'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    data = []
    for index, (text, _) in enumerate(items):
        vector = embedding_vector(text, dimensions)
        encoded = encode_base64_floats(vector) if encoding == "base64" else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(count for _, count in items)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    exchange.record.id = new_id("emb-")
    if exchange.fault_kind() == "malformed":
        return Response(
            '{"object":"list","data":[{"object":"embedding","embedding":[0.1,', media_type="application/json"
        )
    ended = log_reply(exchange, usage)
    return ended or JSONResponse({"object": "list", "data": data, "model": body["model"], "usage": usage})
