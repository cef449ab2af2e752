"""What the proxy's layers hand each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from meterway.core.errors import UpstreamTimeout

# The wire formats: those the clients speak at the front doors, and those the providers speak.
Format = Literal["chat", "messages", "responses", "embeddings"]


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One HTTP request to a provider: the sender adds nothing but pooling and timeouts.

    ``content``, when set, is ``body`` as the bytes to send: a provider that signs the body
    (Bedrock's SigV4) serializes it itself.
    """

    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None


@dataclass(frozen=True, slots=True)
class Wait:
    """One wait on a provider: how long at most, and the error that ends it (``TimeBudget``)."""

    seconds: float
    error: UpstreamTimeout
