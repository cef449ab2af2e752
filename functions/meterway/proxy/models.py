"""What the proxy's layers hand each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from meterway.core.errors import UpstreamTimeout

# The wire formats: those the clients speak at the front doors, and those the providers speak.
Format = Literal["chat", "messages", "responses", "embeddings"]


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One HTTP request to a provider: the sender adds nothing but pooling and timeouts."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Wait:
    """One wait on a provider: how long at most, and the error that ends it (``TimeBudget``)."""

    seconds: float
    error: UpstreamTimeout
