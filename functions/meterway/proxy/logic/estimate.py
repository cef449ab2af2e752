"""Honest estimates for a stream cut before the upstream reported its usage.

About four characters a token is the providers' own rule of thumb for English text; records that
rely on it are flagged ``usage_estimated`` so nobody mistakes them for the provider's count.
"""

from __future__ import annotations

import json
from typing import Any

CHARS_PER_TOKEN = 4


def tokens_for_chars(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def prompt_tokens_estimate(body: dict[str, Any]) -> int:
    """Tokens of the prompt part of a request (Chat, Messages or Responses), from its text length."""
    prompt = {name: body[name] for name in ("messages", "tools", "system", "input", "instructions") if name in body}
    return tokens_for_chars(len(json.dumps(prompt, ensure_ascii=False)))
