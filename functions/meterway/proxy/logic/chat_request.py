"""Request models of the inference API (pydantic). Unknown fields pass through to the provider,
except those that would let a caller steer the gateway itself."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from meterway.core.errors import InvalidRequest

# Fields other gateways accept to re-point a call; here the upstream comes from configuration only.
FORBIDDEN_FIELDS = frozenset({"api_base", "base_url", "api_key", "api_version", "custom_llm_provider", "extra_headers"})


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=200)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    user: str | None = Field(default=None, max_length=256)

    @field_validator("messages")
    @classmethod
    def _roles_present(cls, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, message in enumerate(messages):
            if not isinstance(message.get("role"), str):
                raise ValueError(f"messages[{index}] has no 'role'")
        return messages


def parse_request(model: type[BaseModel], payload: Any) -> Any:
    """Validate a JSON body; any problem is a 400 that names the field."""
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    forbidden = sorted(FORBIDDEN_FIELDS.intersection(payload))
    if forbidden:
        raise InvalidRequest(
            f"Field(s) {', '.join(forbidden)} are not accepted: the upstream is set by the gateway's configuration.",
            code="forbidden_field",
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidRequest(f"Invalid '{where}': {first['msg']}.", code="invalid_parameters") from exc
