"""Token usage normalised across providers.

The ledger keeps token classes that never overlap (DESIGN §3): ``input_tokens`` are prompt tokens
billed at the base input rate, without cache reads or cache writes. OpenAI's ``prompt_tokens``
includes its cached tokens and Anthropic's ``input_tokens`` excludes them, so each provider's
usage block is converted here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

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
    """Disjoint token classes of one request; ``reasoning_tokens`` is a part of ``output_tokens``."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    cache_read_tokens: int = 0

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


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def from_openai(usage: dict[str, Any]) -> TokenUsage:
    """Normalise an OpenAI ``usage`` object (chat completions or embeddings).

    ``prompt_tokens`` includes ``prompt_tokens_details.cached_tokens``; OpenAI reports no cache
    writes. ``completion_tokens`` includes ``completion_tokens_details.reasoning_tokens``.
    """
    prompt = _int(usage.get("prompt_tokens"))
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cached = min(_int(prompt_details.get("cached_tokens")), prompt)
    output = _int(usage.get("completion_tokens"))
    return TokenUsage(
        input_tokens=prompt - cached,
        output_tokens=output,
        reasoning_tokens=min(_int(completion_details.get("reasoning_tokens")), output),
        cache_read_tokens=cached,
    )


def from_anthropic(usage: dict[str, Any]) -> TokenUsage:
    """Normalise an Anthropic ``usage`` object.

    ``input_tokens`` already excludes cache reads and writes. The 5-minute/1-hour split comes from
    ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``; when only the
    total ``cache_creation_input_tokens`` is given, the writes are 5-minute ones (Anthropic's default).
    """
    created_total = _int(usage.get("cache_creation_input_tokens"))
    split = usage.get("cache_creation") or {}
    one_hour = _int(split.get("ephemeral_1h_input_tokens"))
    five_min = _int(split.get("ephemeral_5m_input_tokens"))
    if not split:
        five_min = created_total
    return TokenUsage(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cache_creation_5m_tokens=five_min,
        cache_creation_1h_tokens=one_hour,
        cache_read_tokens=_int(usage.get("cache_read_input_tokens")),
    )


def merge_anthropic(start: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """Combine ``message_start``'s usage with a later ``message_delta`` usage.

    A ``message_delta`` carries cumulative counts; fields it leaves out keep their start values.
    """
    merged = dict(start)
    for name, value in delta.items():
        if value is not None:
            merged[name] = value
    return merged
