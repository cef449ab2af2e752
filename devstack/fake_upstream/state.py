"""Per-server mutable state: caches, pending faults and the log of received requests."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.requests import Request

from .cache import AnthropicPromptCache, OpenAIPromptCache
from .config import FakeUpstreamConfig
from .faults import FaultQueue

REDACTED_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization"})
# The dev stack may run for days: keep the log bounded, dropping the oldest entries.
MAX_LOGGED_REQUESTS = 10_000


@dataclass
class RequestRecord:
    """What the fake received for one provider request and what it answered.

    ``usage`` is the usage the fake accounted for the request: the object it reported, the
    partial one when a stream was cut or abandoned by the client, or the one it would have
    reported when the client did not ask for usage (``usage_reported`` tells them apart).
    """

    path: str
    model: str | None
    stream: bool
    body: Any
    headers: dict[str, str]
    id: str | None = None
    request_id: str | None = None
    status: int | None = None
    usage: dict[str, Any] | None = None
    usage_reported: bool = False
    fault: dict[str, Any] | None = None
    client_disconnected: bool = False
    received_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """JSON form served by ``GET /_fake/requests``."""
        return asdict(self)


class FakeState:
    """Everything a fake upstream instance remembers between requests."""

    def __init__(self, config: FakeUpstreamConfig) -> None:
        self.config = config
        self.openai_cache = OpenAIPromptCache(config.openai_cache_min_tokens, config.openai_cache_ttl_s)
        self.anthropic_cache = AnthropicPromptCache(config.anthropic_cache_min_tokens)
        self.faults = FaultQueue()
        self.requests: list[RequestRecord] = []
        # Requests received by path since the last reset: not bounded like the log.
        self.received: Counter[str] = Counter()

    def record(
        self, request: Request, body: Any, *, model: str | None = None, stream: bool | None = None
    ) -> RequestRecord:
        """Append a log entry for an incoming provider request (``model`` and ``stream`` override the body's)."""
        payload = body if isinstance(body, dict) else {}
        model = model or payload.get("model")
        headers = {
            name.lower(): ("***" if name.lower() in REDACTED_HEADERS else value)
            for name, value in request.headers.items()
        }
        record = RequestRecord(
            path=request.url.path,
            model=model if isinstance(model, str) else None,
            stream=payload.get("stream") is True if stream is None else stream,
            body=body,
            headers=headers,
        )
        self.requests.append(record)
        self.received[record.path] += 1
        if len(self.requests) > MAX_LOGGED_REQUESTS:
            del self.requests[: len(self.requests) - MAX_LOGGED_REQUESTS]
        return record

    def reset(self) -> None:
        """Forget faults, cached prefixes and logged requests."""
        self.faults.clear()
        self.openai_cache.clear()
        self.anthropic_cache.clear()
        self.requests.clear()
        self.received.clear()
