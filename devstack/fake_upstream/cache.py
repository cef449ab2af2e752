"""In-memory prompt caches mimicking OpenAI's automatic and Anthropic's explicit caching."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .prompt import PromptBlock

Clock = Callable[[], float]

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


def _hash_tokens(hasher: hashlib._Hash, tokens: Sequence[str]) -> None:
    # Separators keep ["ab", "c"] and ["a", "bc"] from hashing alike.
    hasher.update("\x1e".join(tokens).encode())
    hasher.update(b"\x1d")


class OpenAIPromptCache:
    """Automatic prefix cache: hits are reported in 128-token increments above a minimum length."""

    INCREMENT = 128
    _PRUNE_ABOVE = 100_000

    def __init__(self, min_tokens: int, ttl_s: float, clock: Clock = time.monotonic) -> None:
        self.min_tokens = min_tokens
        self.ttl_s = ttl_s
        self._clock = clock
        self._expiry: dict[bytes, float] = {}

    def clear(self) -> None:
        """Forget every cached prefix."""
        self._expiry.clear()

    def _prefix_digests(self, model: str, tokens: Sequence[str]) -> list[tuple[int, bytes]]:
        hasher = hashlib.sha256(model.encode())
        digests = []
        for start in range(0, len(tokens) - len(tokens) % self.INCREMENT, self.INCREMENT):
            _hash_tokens(hasher, tokens[start : start + self.INCREMENT])
            digests.append((start + self.INCREMENT, hasher.copy().digest()))
        return digests

    def lookup_and_store(self, model: str, tokens: Sequence[str]) -> int:
        """Return the cached token count for this prompt, then remember its prefixes."""
        now = self._clock()
        digests = self._prefix_digests(model, tokens)
        cached = 0
        for length, digest in reversed(digests):
            if length < self.min_tokens:
                break
            if self._expiry.get(digest, 0.0) > now:
                cached = length
                break
        if len(self._expiry) > self._PRUNE_ABOVE:
            self._expiry = {key: exp for key, exp in self._expiry.items() if exp > now}
        for _, digest in digests:
            self._expiry[digest] = now + self.ttl_s
        return cached


@dataclass(frozen=True)
class AnthropicCacheUsage:
    """How the input tokens of one request split between cache reads, writes and plain input."""

    input_tokens: int
    cache_read_input_tokens: int
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int

    @property
    def cache_creation_input_tokens(self) -> int:
        """All tokens written to the cache, whatever their TTL."""
        return self.ephemeral_5m_input_tokens + self.ephemeral_1h_input_tokens

    @property
    def total_input_tokens(self) -> int:
        """Every prompt token: plain input plus cache reads plus cache writes."""
        return self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens


class AnthropicPromptCache:
    """Explicit breakpoint cache: prefixes ending at a ``cache_control`` block are cached per model."""

    # The real API looks for earlier cache entries up to about 20 blocks before each breakpoint.
    LOOKBACK_BLOCKS = 20

    def __init__(self, min_tokens: int, clock: Clock = time.monotonic) -> None:
        self.min_tokens = min_tokens
        self._clock = clock
        self._entries: dict[bytes, tuple[float, float]] = {}

    def clear(self) -> None:
        """Forget every cached prefix."""
        self._entries.clear()

    def _read(self, breakpoints: list[int], positions: list[int], digests: list[bytes], now: float) -> int:
        candidates = {j for b in breakpoints for j in range(max(0, b - self.LOOKBACK_BLOCKS), b + 1)}
        for j in sorted(candidates, reverse=True):
            expires_at, ttl_s = self._entries.get(digests[j], (0.0, 0.0))
            if expires_at > now:
                # A hit refreshes the entry's lifetime, at no cost, like the real cache.
                self._entries[digests[j]] = (now + ttl_s, ttl_s)
                return positions[j]
        return 0

    def apply(self, model: str, blocks: Sequence[PromptBlock]) -> AnthropicCacheUsage:
        """Account one request against the cache and record the prefixes it writes."""
        now = self._clock()
        hasher = hashlib.sha256(model.encode())
        positions: list[int] = []
        digests: list[bytes] = []
        total = 0
        for block in blocks:
            _hash_tokens(hasher, block.tokens)
            total += len(block.tokens)
            positions.append(total)
            digests.append(hasher.copy().digest())
        breakpoints = [i for i, block in enumerate(blocks) if block.cache_ttl]
        if not breakpoints:
            return AnthropicCacheUsage(total, 0, 0, 0)
        read = self._read(breakpoints, positions, digests, now)
        written = {"5m": 0, "1h": 0}
        previous = read
        for b in breakpoints:
            ttl = blocks[b].cache_ttl or "5m"
            if positions[b] <= read or positions[b] < self.min_tokens:
                continue
            written[ttl] += positions[b] - previous
            previous = positions[b]
            self._entries[digests[b]] = (now + TTL_SECONDS[ttl], TTL_SECONDS[ttl])
        return AnthropicCacheUsage(
            input_tokens=total - read - written["5m"] - written["1h"],
            cache_read_input_tokens=read,
            ephemeral_5m_input_tokens=written["5m"],
            ephemeral_1h_input_tokens=written["1h"],
        )
