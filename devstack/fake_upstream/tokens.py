"""Deterministic tokenizer, reply generator and embeddings.

Nothing here is a real BPE: the goal is counts that are stable across runs and
plausible in magnitude, so usage accounting can be asserted exactly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from typing import Any

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
# One token with the whitespace before it: how a text is cut into stream deltas.
_PIECE_RE = re.compile(r"\s*(?:\w+|[^\w\s])")

# An image costs a fixed number of tokens, like a low-detail image on the real APIs.
IMAGE_TOKENS = 85
# Binary documents (PDF) cannot be tokenized here; charge a flat, page-like amount.
DOCUMENT_TOKENS = 256

MIN_REPLY_TOKENS = 12
MAX_REPLY_TOKENS = 48

# Plain alphabetic words only, so that every reply word is exactly one token for count_tokens().
WORDS = (
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "meter",
    "gateway",
    "token",
    "stream",
    "cache",
    "prompt",
    "reply",
    "model",
    "usage",
    "bill",
    "price",
    "quota",
    "ledger",
    "cloud",
    "lambda",
    "table",
    "query",
    "answer",
    "river",
    "mountain",
    "signal",
    "packet",
    "window",
    "buffer",
    "cursor",
    "budget",
    "latency",
    "vector",
    "kernel",
    "thread",
    "socket",
    "header",
    "record",
    "event",
    "shard",
    "region",
    "replica",
    "commit",
    "branch",
    "merge",
    "review",
    "pilot",
    "harbor",
    "lantern",
    "meadow",
    "orbit",
    "pebble",
    "quartz",
    "saddle",
    "timber",
    "velvet",
    "willow",
    "zephyr",
    "amber",
    "beacon",
    "cinder",
    "delta",
    "ember",
    "falcon",
    "glacier",
)


def tokenize(text: str) -> list[str]:
    """Split text into tokens: each word run or punctuation character is one token."""
    return TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Number of tokens in ``text`` according to the fake tokenizer."""
    return len(TOKEN_RE.findall(text))


def stream_pieces(text: str) -> list[str]:
    """``text`` cut into one piece per token, whitespace kept, so the pieces join back into ``text``.

    Deltas are streamed one piece at a time, which makes the number of deltas equal the
    number of billed output tokens.
    """
    pieces = _PIECE_RE.findall(text)
    if pieces:
        pieces[-1] += text[len("".join(pieces)) :]
    return pieces


def stable_hash(value: Any) -> int:
    """A process-independent 64-bit hash of a JSON-serialisable value."""
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return int.from_bytes(hashlib.sha256(raw).digest()[:8], "big")


def opaque_tokens(kind: str, value: Any, count: int) -> list[str]:
    """``count`` placeholder tokens whose identity depends on ``value``.

    Used for images and binary documents: two different images must not share a cached prefix.
    """
    tag = f"{stable_hash(value):016x}"
    return [f"<{kind}:{tag}:{i}>" for i in range(count)]


def json_tokens(value: Any) -> list[str]:
    """Tokens of the canonical JSON text of ``value`` (tool definitions, tool inputs...)."""
    return tokenize(json.dumps(value, sort_keys=True, ensure_ascii=False))


def natural_reply_length(seed: int) -> int:
    """Hash-derived length (12..48 tokens) the model would reply with, without any limit."""
    return MIN_REPLY_TOKENS + seed % (MAX_REPLY_TOKENS - MIN_REPLY_TOKENS + 1)


def reply_tokens(seed: int, count: int) -> list[str]:
    """``count`` output tokens as they are streamed: the first bare, the others with a leading space."""
    words: list[str] = []
    state = seed
    for i in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        word = WORDS[(state >> 33) % len(WORDS)]
        words.append(word if i == 0 else f" {word}")
    return words


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit-length vector for ``text``."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for i in range(0, len(digest), 4):
            values.append(int.from_bytes(digest[i : i + 4], "big") / 0xFFFFFFFF * 2.0 - 1.0)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    # Round-trip through float32 so float and base64 encodings return identical numbers.
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in values]


def encode_base64_floats(values: list[float]) -> str:
    """Little-endian float32 base64, the format of OpenAI's ``encoding_format=base64``."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
