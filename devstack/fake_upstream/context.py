"""Context windows, and when a prompt is too long for one.

A prompt longer than its model's window is refused, in each provider's own words; a
``context_length`` fault makes the next matching request fail the same way without sending
hundreds of thousands of tokens (it reports a prompt one token over the window, or
``tokens`` when the fault sets it).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from .common import Exchange

# Longest prefix first; requests for other models get DEFAULT_CONTEXT_WINDOW.
CONTEXT_WINDOWS = (
    ("gpt-4.1", 1_047_576),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-5-chat", 128_000),
    ("gpt-5", 400_000),
    ("gpt-6", 400_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("claude-", 200_000),
)
DEFAULT_CONTEXT_WINDOW = 200_000
# Anthropic's long-context beta raises the window of the models that support it.
ANTHROPIC_1M_BETA = "context-1m"
ANTHROPIC_1M_WINDOW = 1_000_000


def context_window(model: str, request: Request | None = None) -> int:
    """The model's context window in tokens, as the real provider enforces it."""
    if request is not None and ANTHROPIC_1M_BETA in request.headers.get("anthropic-beta", ""):
        return ANTHROPIC_1M_WINDOW
    return next((size for prefix, size in CONTEXT_WINDOWS if model.startswith(prefix)), DEFAULT_CONTEXT_WINDOW)


@dataclass(frozen=True)
class Overflow:
    """A prompt of ``tokens`` tokens that does not fit a ``window``-token context."""

    tokens: int
    window: int


def overflow(exchange: Exchange, model: str, prompt_tokens: int) -> Overflow | None:
    """The overflow to report for this request, if its prompt is too long (or a fault says so)."""
    window = context_window(model, exchange.request)
    fault = exchange.fault
    if fault is not None and fault.kind == "context_length":
        return Overflow(fault.tokens if fault.tokens is not None else window + 1, window)
    return Overflow(prompt_tokens, window) if prompt_tokens > window else None
