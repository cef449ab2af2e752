"""Flatten OpenAI and Anthropic request bodies into token sequences.

The order matters for prompt caching: both providers cache prefixes, so the
flattening follows the order in which the real models read the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .tokens import DOCUMENT_TOKENS, IMAGE_TOKENS, json_tokens, opaque_tokens, tokenize

# Anthropic refuses more cache breakpoints than this in one request.
MAX_CACHE_BREAKPOINTS = 4
CACHE_TTLS = ("5m", "1h")


class PromptError(ValueError):
    """The request body describes a prompt the provider would reject (HTTP 400)."""


def message_header(role: str) -> list[str]:
    """The 3 tokens chat templates wrap every message in: start, role, separator."""
    return ["<|start|>", role, "<|message|>"]


# --- OpenAI -----------------------------------------------------------------------------------------


def _openai_part_tokens(part: Any) -> list[str]:
    if not isinstance(part, dict):
        return tokenize(str(part))
    kind = part.get("type")
    if kind == "text":
        return tokenize(str(part.get("text", "")))
    if kind == "refusal":
        return tokenize(str(part.get("refusal", "")))
    if kind in ("image_url", "input_audio"):
        return opaque_tokens(kind, part.get(kind), IMAGE_TOKENS)
    if kind == "file":
        return opaque_tokens("file", part.get("file"), DOCUMENT_TOKENS)
    return json_tokens(part)


def _openai_content_tokens(content: Any) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return tokenize(content)
    if isinstance(content, list):
        return [token for part in content for token in _openai_part_tokens(part)]
    return json_tokens(content)


def openai_prompt_tokens(body: dict[str, Any]) -> list[str]:
    """Token sequence of a chat completion request: tools, then messages, then the reply primer."""
    tokens: list[str] = []
    tools = body.get("tools") or body.get("functions")
    if tools:
        # Tool definitions are rendered into the system area, ahead of the conversation.
        tokens += ["<|tools|>", *json_tokens(tools)]
    if isinstance(body.get("response_format"), dict) and body["response_format"].get("type") != "text":
        tokens += ["<|format|>", *json_tokens(body["response_format"])]
    for message in body["messages"]:
        tokens += message_header(str(message.get("role")))
        if message.get("name"):
            tokens += tokenize(str(message["name"]))
        tokens += _openai_content_tokens(message.get("content"))
        for key in ("tool_calls", "function_call"):
            if message.get(key):
                tokens += json_tokens(message[key])
    # Every reply is primed with <|start|>assistant<|message|>.
    tokens += message_header("assistant")
    return tokens


# --- Anthropic --------------------------------------------------------------------------------------


@dataclass
class PromptBlock:
    """One cacheable unit of an Anthropic prompt (a tool, a system block or a content block)."""

    tokens: list[str]
    cache_ttl: str | None = None


def _cache_ttl(item: Any) -> str | None:
    control = item.get("cache_control") if isinstance(item, dict) else None
    if control is None:
        return None
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise PromptError("cache_control.type: Input should be 'ephemeral'")
    ttl = control.get("ttl", "5m")
    if ttl not in CACHE_TTLS:
        raise PromptError("cache_control.ttl: Input should be '5m' or '1h'")
    return str(ttl)


def _without_cache_control(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key != "cache_control"}


def _document_tokens(block: dict[str, Any]) -> list[str]:
    source = block.get("source") or {}
    tokens = tokenize(str(block.get("title") or "")) + tokenize(str(block.get("context") or ""))
    if source.get("type") == "text":
        return tokens + tokenize(str(source.get("data", "")))
    if source.get("type") == "content":
        return tokens + _anthropic_content_tokens(source.get("content"))
    return tokens + opaque_tokens("document", source, DOCUMENT_TOKENS)


def _anthropic_block_tokens(block: Any) -> list[str]:
    if not isinstance(block, dict):
        return tokenize(str(block))
    kind = block.get("type")
    if kind == "text":
        return tokenize(str(block.get("text", "")))
    if kind == "image":
        return opaque_tokens("image", block.get("source"), IMAGE_TOKENS)
    if kind == "document":
        return _document_tokens(block)
    if kind == "tool_use":
        return tokenize(str(block.get("name", ""))) + json_tokens(block.get("input", {}))
    if kind == "tool_result":
        return _anthropic_content_tokens(block.get("content"))
    if kind == "thinking":
        return tokenize(str(block.get("thinking", "")))
    return json_tokens(_without_cache_control(block))


def _anthropic_content_tokens(content: Any) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return tokenize(content)
    if isinstance(content, list):
        return [token for block in content for token in _anthropic_block_tokens(block)]
    return json_tokens(content)


def _content_blocks(content: Any) -> list[PromptBlock]:
    if isinstance(content, list):
        return [PromptBlock(_anthropic_block_tokens(block), _cache_ttl(block)) for block in content]
    return [PromptBlock(_anthropic_content_tokens(content))]


def _check_breakpoints(blocks: list[PromptBlock]) -> None:
    ttls = [block.cache_ttl for block in blocks if block.cache_ttl]
    if len(ttls) > MAX_CACHE_BREAKPOINTS:
        raise PromptError(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {len(ttls)}."
        )
    if "5m" in ttls and "1h" in ttls[ttls.index("5m") :]:
        raise PromptError("a cache_control block with ttl='1h' cannot come after a block with ttl='5m'")


def anthropic_prompt_blocks(body: dict[str, Any]) -> list[PromptBlock]:
    """Blocks of a Messages request in the order the model reads them: tools, output format, system, messages.

    A block whose ``cache_ttl`` is set is a cache breakpoint. A top-level ``cache_control``
    marks the last block of the prompt, as the real API does. The output format sits between
    the tools and the system prompt: changing it keeps the tools cached but not what follows,
    as documented for structured outputs.
    """
    blocks: list[PromptBlock] = []
    for tool in body.get("tools") or []:
        plain = _without_cache_control(tool) if isinstance(tool, dict) else tool
        blocks.append(PromptBlock(json_tokens(plain), _cache_ttl(tool)))
    config = body.get("output_config")
    output_format = config.get("format") if isinstance(config, dict) else None
    if output_format:
        blocks.append(PromptBlock(["<|format|>", *json_tokens(output_format)]))
    system = body.get("system")
    if system:
        system_blocks = _content_blocks(system)
        system_blocks[0].tokens[:0] = ["<|system|>"]
        blocks += system_blocks
    for message in body["messages"]:
        message_blocks = _content_blocks(message.get("content")) or [PromptBlock([])]
        message_blocks[0].tokens[:0] = message_header(str(message.get("role")))
        blocks += message_blocks
    top_level_ttl = _cache_ttl(body)
    if top_level_ttl and blocks and blocks[-1].cache_ttl is None:
        blocks[-1].cache_ttl = top_level_ttl
    _check_breakpoints(blocks)
    return blocks
