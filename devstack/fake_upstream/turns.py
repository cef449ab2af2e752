"""What the deterministic model says, whatever the dialect: a tool call or a text reply.

Each dialect extracts a ``Conversation`` from its request body; the rules here are shared:

* tools are offered, the last user message names one of them by its exact name, and no tool
  result ends the conversation: the model calls that tool (each named tool, in the order they
  are named, when parallel calls are allowed), with arguments built from the tool's schema.
  Context that agents add to a user turn in tags (Claude Code's ``<system-reminder>``, Codex's
  ``<environment_context>``) names tools too, but is not what the user asked: it is not read;
* the conversation ends with tool results: the model answers text that quotes them;
* ``tool_choice`` forcing a tool (or requiring one) makes it call a tool whatever the prompt
  says; ``none`` makes it never call one;
* a structured output schema makes the text a JSON instance of that schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .schema_values import example_value
from .tokens import natural_reply_length, reply_tokens, stable_hash, stream_pieces

# How much of a tool result the reply quotes.
QUOTED_RESULT_TOKENS = 40
CUSTOM_INPUT_TOKENS = 8
AUTO, NONE, REQUIRED = "auto", "none", "required"


@dataclass(frozen=True)
class ToolSpec:
    """An offered tool: JSON-schema arguments, or free-form input when ``schema`` is None."""

    name: str
    schema: dict[str, Any] | None

    @property
    def custom(self) -> bool:
        """OpenAI custom tools take a free-form string instead of JSON arguments."""
        return self.schema is None


@dataclass(frozen=True)
class ToolResult:
    """A tool result at the end of the conversation; ``name`` is known when its call is in the history."""

    name: str | None
    content: str


@dataclass
class Conversation:
    """The facts of a request that decide the reply, extracted by each dialect."""

    tools: list[ToolSpec] = field(default_factory=list)
    mode: str = AUTO  # auto, none or required
    forced: str | None = None  # the tool the request forces, if any
    parallel: bool = True
    last_user_text: str | None = None
    tool_results: list[ToolResult] = field(default_factory=list)


@dataclass(frozen=True)
class ToolCall:
    """A call the model decided: JSON-ready arguments, or a string for custom tools."""

    name: str
    arguments: Any
    custom: bool = False


@dataclass
class PlannedCall:
    """A tool call as a dialect sends it: its id, its full argument text and the streamed pieces."""

    id: str
    name: str
    arguments: str
    pieces: list[str]
    custom: bool = False

    @property
    def sent(self) -> str:
        """The argument text actually produced (shorter than ``arguments`` when cut by a limit)."""
        return "".join(self.pieces)

    @property
    def complete(self) -> bool:
        """Whether the output limit left the arguments whole."""
        return self.sent == self.arguments


def plan_calls(calls: list[ToolCall], new_id: Callable[[], str], encode: Callable[[Any], str]) -> list[PlannedCall]:
    """Give each call an id and its argument text (``encode`` is the dialect's JSON style)."""
    planned = []
    for call in calls:
        text = call.arguments if call.custom else encode(call.arguments)
        planned.append(PlannedCall(new_id(), call.name, text, stream_pieces(text), call.custom))
    return planned


# Context an agent wraps around the user's words; a real model reads past it to the request.
_AGENT_CONTEXT = re.compile(r"<(system-reminder|environment_context|user_instructions)>.*?</\1>", re.DOTALL)


def named_tools(text: str | None, tools: list[ToolSpec]) -> list[ToolSpec]:
    """Offered tools that ``text`` names exactly (not as part of a longer name), in order of mention,
    leaving out the agent context in it."""
    text = _AGENT_CONTEXT.sub("", text or "")
    if not text:
        return []
    found = []
    for tool in tools:
        match = re.search(rf"(?<![\w-]){re.escape(tool.name)}(?![\w-])", text)
        if match:
            found.append((match.start(), tool))
    return [tool for _, tool in sorted(found, key=lambda item: item[0])]


def choose_tool_calls(conversation: Conversation, seed: int) -> list[ToolCall]:
    """The tool calls the model makes this turn (empty: it answers with text)."""
    offered = conversation.tools
    if conversation.mode == NONE or not offered:
        return []
    if conversation.forced is not None:
        forced = next((t for t in offered if t.name == conversation.forced), ToolSpec(conversation.forced, {}))
        return [_call(forced, seed)]
    chosen = [] if conversation.tool_results else named_tools(conversation.last_user_text, offered)
    if not chosen and conversation.mode == REQUIRED:
        chosen = named_tools(conversation.last_user_text, offered) or offered[:1]
    if not conversation.parallel:
        chosen = chosen[:1]
    return [_call(tool, seed) for tool in chosen]


def _call(tool: ToolSpec, seed: int) -> ToolCall:
    if tool.custom:
        words = reply_tokens(stable_hash(["custom", tool.name, seed]), CUSTOM_INPUT_TOKENS)
        return ToolCall(tool.name, "".join(words), custom=True)
    arguments = example_value(tool.schema or {"type": "object"})
    return ToolCall(tool.name, arguments if isinstance(arguments, dict) else {})


def reply_text(
    conversation: Conversation,
    seed: int,
    *,
    schema: dict[str, Any] | None = None,
    json_object: bool = False,
    natural_cap: int | None = None,
) -> str:
    """The text reply: a JSON instance of ``schema``, a quote of tool results, ``pong`` or filler words.

    ``natural_cap`` caps only the filler words: it stands for the model's own reply length.
    """
    if schema is not None:
        return json.dumps(example_value(schema), separators=(",", ":"), ensure_ascii=False)
    if conversation.tool_results:
        text = "\n".join(_quote(result) for result in conversation.tool_results)
    elif (conversation.last_user_text or "").strip() == "ping":
        text = "pong"
    else:
        length = natural_reply_length(seed)
        text = "".join(reply_tokens(seed, length if natural_cap is None else min(length, natural_cap)))
    if json_object:
        return json.dumps({"reply": text}, ensure_ascii=False)
    return text


def _quote(result: ToolResult) -> str:
    pieces = stream_pieces(result.content.strip())
    excerpt = "".join(pieces[:QUOTED_RESULT_TOKENS]).strip() + (" …" if len(pieces) > QUOTED_RESULT_TOKENS else "")
    return f"The {result.name or 'tool'} tool returned: {excerpt or '(nothing)'}"


def within_limit(text: list[str], calls: list[PlannedCall], room: int) -> tuple[list[str], list[PlannedCall], bool]:
    """Cut the reply (text first, then each call's arguments) to ``room`` tokens; True when cut."""
    kept_text = text[: max(0, room)]
    room -= len(kept_text)
    kept_calls = []
    for call in calls:
        if room <= 0:
            break
        kept_calls.append(replace(call, pieces=call.pieces[:room]))
        room -= len(kept_calls[-1].pieces)
    cut = len(kept_text) < len(text) or len(kept_calls) < len(calls) or not all(c.complete for c in kept_calls)
    return kept_text, kept_calls, cut


def content_text(content: Any) -> str:
    """Plain text of a message or tool result content: a string, or the text of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        return "\n".join(text for text in texts if isinstance(text, str))
    return "" if content is None else json.dumps(content)
