"""What the ledger keeps: the tokens of a request in classes that never overlap, and the record.

``input_tokens`` are prompt tokens billed at the base input rate, without cache reads or cache
writes; ``reasoning_tokens`` are a part of ``output_tokens``; ``total_tokens`` is input + cache
writes + cache reads + output. Each provider's own usage block is converted into these classes by
that provider's module (``meterway.proxy.providers``), and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from meterway.accounts.models import ApiKey
from meterway.core.clock import utc_iso

# The token counts every record, rollup and export carries, in the order they are shown.
TOKEN_FIELDS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cache_creation_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_tokens",
    "total_tokens",
)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Disjoint token classes of one request; ``reasoning_tokens`` is a part of ``output_tokens``.

    ``web_searches`` are the searches the provider ran itself (Anthropic's server-side web search),
    billed per search: they are not tokens and are in no token total.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    cache_read_tokens: int = 0
    web_searches: int = 0

    @property
    def cache_creation_tokens(self) -> int:
        return self.cache_creation_5m_tokens + self.cache_creation_1h_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_tokens + self.cache_read_tokens + self.output_tokens

    def with_output(self, output_tokens: int, reasoning_tokens: int | None = None) -> TokenUsage:
        return replace(
            self,
            output_tokens=output_tokens,
            reasoning_tokens=self.reasoning_tokens if reasoning_tokens is None else reasoning_tokens,
        )


Status = Literal["ok", "error", "partial"]


@dataclass(slots=True)
class UsageRecord:
    """What the ledger keeps of one request; built by the proxy, written once."""

    request_id: str
    created_at: datetime
    key: ApiKey
    model: str
    provider: str
    endpoint: str
    streamed: bool
    status: Status = "ok"
    tokens: TokenUsage = field(default_factory=TokenUsage)
    usage_estimated: bool = False
    cost_usd: Decimal = Decimal(0)
    prices: dict[str, Decimal] = field(default_factory=dict)
    latency_ms: int = 0
    ttft_ms: int | None = None
    user: str | None = None
    app: str | None = None
    finish_reason: str | None = None
    error_code: str | None = None
    upstream_status: int | None = None
    #: The catalog model that served it, when not ``model`` (a fallback route).
    route: str | None = None
    #: How many attempts the request took, when more than one (its failed ones are records too).
    attempts: int | None = None
    #: On a failed attempt's own record: the client request it was made for, and its number.
    attempt_of: str | None = None
    attempt: int | None = None

    def to_item(self, *, retention_days: int = 0) -> dict[str, Any]:
        """The DynamoDB item (plain Python values; Decimals for money and rates)."""
        created = utc_iso(self.created_at)
        item: dict[str, Any] = {
            "request_id": self.request_id,
            "created_at": created,
            "created_sk": f"{created}#{self.request_id}",
            "account_id": self.key.account_id,
            "key_id": self.key.key_id,
            "key_name": self.key.name,
            "member": self.key.member or "",
            "model": self.model,
            "provider": self.provider,
            "endpoint": self.endpoint,
            "streamed": self.streamed,
            "status": self.status,
            "input_tokens": self.tokens.input_tokens,
            "output_tokens": self.tokens.output_tokens,
            "reasoning_tokens": self.tokens.reasoning_tokens,
            "cache_creation_tokens": self.tokens.cache_creation_tokens,
            "cache_creation_5m_tokens": self.tokens.cache_creation_5m_tokens,
            "cache_creation_1h_tokens": self.tokens.cache_creation_1h_tokens,
            "cache_read_tokens": self.tokens.cache_read_tokens,
            "total_tokens": self.tokens.total_tokens,
            "web_searches": self.tokens.web_searches or None,
            "usage_estimated": self.usage_estimated,
            "cost_usd": self.cost_usd,
            "prices": dict(self.prices),
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "user": self.user,
            "app": self.app,
            "finish_reason": self.finish_reason,
            "error_code": self.error_code,
            "upstream_status": self.upstream_status,
            "route": self.route,
            "attempts": self.attempts,
            "attempt_of": self.attempt_of,
            "attempt": self.attempt,
        }
        if retention_days > 0:
            item["expires_at"] = int((self.created_at + timedelta(days=retention_days)).timestamp())
        return {name: value for name, value in item.items() if value is not None}
