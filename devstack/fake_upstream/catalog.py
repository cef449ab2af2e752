"""``GET /v1/models`` in the OpenAI or the Anthropic format, depending on who asks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .anthropic_api import ANTHROPIC
from .common import key_accepted
from .openai_api import OPENAI

# Requests for any other model name are served too; this is only what the listing shows.
OPENAI_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-5.4",
    "gpt-5.4-mini",
    "gpt-5.5",
    "o3",
    "o4-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
ANTHROPIC_MODELS = (
    ("claude-opus-4-7", "Claude Opus 4.7"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5"),
    ("claude-opus-5", "Claude Opus 5"),
    ("claude-sonnet-5", "Claude Sonnet 5"),
)
_CREATED = 1_715_367_049


def _is_anthropic(request: Request) -> bool:
    return "x-api-key" in request.headers or "anthropic-version" in request.headers


async def list_models(request: Request) -> Response:
    """``GET /v1/models``: Anthropic's page format when the caller uses Anthropic headers."""
    config_key = request.app.state.fake.config.api_key
    if _is_anthropic(request):
        key = ANTHROPIC.api_key(request)
        if not key_accepted(key, config_key):
            return ANTHROPIC.auth_error(key)
        data = [
            {"type": "model", "id": model, "display_name": name, "created_at": "2025-01-01T00:00:00Z"}
            for model, name in ANTHROPIC_MODELS
        ]
        return JSONResponse({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})
    key = OPENAI.api_key(request)
    if not key_accepted(key, config_key):
        return OPENAI.auth_error(key)
    models = [{"id": model, "object": "model", "created": _CREATED, "owned_by": "system"} for model in OPENAI_MODELS]
    return JSONResponse({"object": "list", "data": models})
