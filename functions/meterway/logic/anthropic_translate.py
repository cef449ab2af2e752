"""OpenAI Chat Completions <-> Anthropic Messages translation, both ways, streaming included.

The request side lives in ``anthropic_request`` and the response side in ``anthropic_response``;
this module is the one import the gateway needs.
"""

from __future__ import annotations

from meterway.logic.anthropic_request import THINKING_BUDGETS, chat_to_messages
from meterway.logic.anthropic_response import (
    FINISH_REASONS,
    MessagesStreamTranslator,
    anthropic_error_to_message,
    anthropic_token_usage,
    messages_to_chat,
    openai_finish_reason,
    openai_usage,
)

__all__ = [
    "FINISH_REASONS",
    "THINKING_BUDGETS",
    "MessagesStreamTranslator",
    "anthropic_error_to_message",
    "anthropic_token_usage",
    "chat_to_messages",
    "messages_to_chat",
    "openai_finish_reason",
    "openai_usage",
]
