"""Configuration of the fake upstream provider."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FakeUpstreamConfig:
    """Behaviour knobs of the fake upstream.

    Attributes:
        first_token_latency_s: Delay before the first output token (time to first token).
        per_token_latency_s: Delay between two output tokens.
        openai_cache_min_tokens: OpenAI only caches prompts of at least this many tokens
            (the real API uses 1024), and reports cache hits in 128-token increments.
        default_max_tokens: Reply length cap when the request sets no max tokens.
        api_key: When set, requests must carry exactly this key; otherwise any non-empty key works.
        anthropic_cache_min_tokens: Shortest prefix Anthropic caches (the real API uses 1024;
            0 lets tests cache small prompts).
        openai_cache_ttl_s: How long an OpenAI cached prefix survives without being used.
        aws_access_key_id: When set, Bedrock requests must be signed with exactly this access key id;
            otherwise any well-formed SigV4 signature is accepted.
        aws_secret_access_key: When set, Bedrock checks each request's SigV4 signature with this secret.
    """

    first_token_latency_s: float = 0.0
    per_token_latency_s: float = 0.0
    openai_cache_min_tokens: int = 1024
    default_max_tokens: int = 32
    api_key: str | None = None
    anthropic_cache_min_tokens: int = 0
    openai_cache_ttl_s: float = 600.0
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
