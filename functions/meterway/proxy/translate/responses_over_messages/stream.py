"""Anthropic Messages SSE events -> OpenAI Responses stream events, one event at a time.

``message_start`` opens the response (``response.created``, ``response.in_progress``). Each content
block becomes one output item, announced when the block starts (``response.output_item.added``),
streamed by its deltas and finished when the block stops (``response.output_item.done`` with the
whole item), in OpenAI's order:

* ``text``: ``content_part.added``, ``output_text.delta``…, ``output_text.done``, ``content_part.done``;
* ``thinking``: a ``reasoning`` item; ``reasoning_summary_part.added`` with the first thinking text,
  ``reasoning_summary_text.delta``…, then ``.done``s; the item is done with its ``encrypted_content``
  once the ``signature_delta`` arrived (``redacted_thinking``: no summary, the envelope of its data);
* ``tool_use``: a ``function_call`` with ``function_call_arguments.delta`` per ``input_json_delta``
  and ``.done``; or a ``custom_tool_call`` whose ``custom_tool_call_input.delta``s are the decoded
  text of its one string property (see ``response``). Which of the two it is shows in the input's
  first key, so the item is announced once that key has arrived: the first few characters are the
  only thing held back.

``message_stop`` ends it with ``response.completed`` (or ``response.incomplete``) carrying every
item and the usage so far. An ``error`` event raises ``UpstreamError``; ``ping`` and unknown events
yield nothing. Usage, stop reason and output characters are tracked by ``MessagesStreamState``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meterway.core.errors import UpstreamError
from meterway.proxy.formats.base import event_data
from meterway.proxy.formats.messages import MessagesStreamState, ReadsMessagesStream
from meterway.proxy.translate.responses_over_messages.response import (
    CUSTOM_TOOL_INPUT,
    custom_tool_call_item,
    custom_tool_input,
    finish_reason,
    function_call_item,
    incomplete_reason,
    item_id,
    message_item,
    output_text_part,
    reasoning_item,
    response_object,
    usage_block,
)

JsonDict = dict[str, Any]

# The start of a tool input up to its first key (or the end of an empty object).
_FIRST_KEY = re.compile(r'\s*\{\s*(?:"((?:[^"\\]|\\.)*)"|\})')
# The start of a freeform input up to the opening quote of its string value.
_VALUE_START = re.compile(r'\s*\{\s*"(?:[^"\\]|\\.)*"\s*:\s*"')
_HIGH_SURROGATE_ESCAPES = ("d8", "d9", "da", "db")


class _FreeformInput:
    """Decodes the JSON string value of a custom tool call's one property as its JSON arrives.

    It only ever cuts between whole characters: an escape (and a surrogate pair) split across two
    fragments waits for the rest. On anything unexpected it stops: the block's end has the whole input.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._in_value = False
        self._stopped = False

    def feed(self, fragment: str) -> str:
        if self._stopped:
            return ""
        self._pending += fragment
        if not self._in_value:
            match = _VALUE_START.match(self._pending)
            if match is None:
                return ""
            self._pending, self._in_value = self._pending[match.end() :], True
        cut, closed = _safe_cut(self._pending)
        chunk, self._pending = self._pending[:cut], self._pending[cut:]
        self._stopped = closed
        try:
            return str(json.loads(f'"{chunk}"')) if chunk else ""
        except ValueError:
            self._stopped = True
            return ""


def _safe_cut(text: str) -> tuple[int, bool]:
    """How much of a JSON string body can be decoded now, and whether its closing quote is there."""
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            return i, True
        if char != "\\":
            i += 1
        elif i + 1 >= n:
            break
        elif text[i + 1] != "u":
            i += 2
        elif i + 6 > n:
            break
        elif text[i + 2 : i + 4].lower() in _HIGH_SURROGATE_ESCAPES:
            if i + 12 > n:
                break
            i += 12
        else:
            i += 6
    return i, False


@dataclass
class _Block:
    """One open Anthropic content block and the output item it becomes."""

    kind: str
    output_index: int = -1  # -1 while a tool_use waits for its first key
    item_id: str = ""
    parts: list[str] = field(default_factory=list)  # its text, thinking, or raw input JSON
    signature: str = ""
    data: str = ""
    call_id: str = ""
    name: str = ""
    custom: bool = False
    summary_open: bool = False
    decoder: _FreeformInput | None = None
    decoded: list[str] = field(default_factory=list)


class ResponsesStreamTranslator(ReadsMessagesStream):
    """Turns Anthropic SSE events into Responses stream events (see the module's docstring)."""

    def __init__(self, *, model: str, request_id: str, created: int) -> None:
        self._model = model
        self._request_id = request_id
        self._created = created
        self._state = MessagesStreamState()
        self._sequence = 0
        self._started = False
        self._output: list[JsonDict | None] = []  # the finished items, by output index
        self._blocks: dict[int, _Block] = {}
        self._handlers: dict[str, Callable[[JsonDict], list[JsonDict]]] = {
            "message_start": self._on_message_start,
            "content_block_start": self._on_block_start,
            "content_block_delta": self._on_block_delta,
            "content_block_stop": self._on_block_stop,
            "message_stop": self._on_message_stop,
        }

    @property
    def finish_reason(self) -> str | None:
        return finish_reason(self._state.stop_reason)

    def feed(self, event: str, data: str) -> list[JsonDict]:
        """Translate one SSE event (its name and JSON data); the payload's own type wins over the name.

        Raises ``UpstreamError`` on an ``error`` event, ``ValueError`` on data that is not JSON.
        """
        payload = event_data(data)
        if not isinstance(payload, dict):
            return []
        payload["type"] = kind = str(payload.get("type") or event)
        if kind == "error":
            raise _stream_error(payload.get("error"))
        self._state.observe(payload)
        handler = self._handlers.get(kind)
        return handler(payload) if handler else []

    # ------------------------------------------------------------ framing

    def _emit(self, kind: str, **fields: Any) -> JsonDict:
        event = {"type": kind, **fields, "sequence_number": self._sequence}
        self._sequence += 1
        return event

    def _response(self, status: str, output: list[JsonDict], reason: str | None = None) -> JsonDict:
        usage = usage_block(self._state.usage) if status != "in_progress" else None
        return response_object(
            request_id=self._request_id,
            created=self._created,
            model=self._model,
            output=output,
            status=status,
            usage=usage,
            reason=reason,
        )

    def _begin(self) -> list[JsonDict]:
        if self._started:
            return []
        self._started = True
        return [
            self._emit("response.created", response=self._response("in_progress", [])),
            self._emit("response.in_progress", response=self._response("in_progress", [])),
        ]

    def _announce(self, block: _Block, kind: str, item: JsonDict) -> JsonDict:
        """Give the block its output index and item id; ``item`` is filled in with the id."""
        block.output_index = len(self._output)
        block.item_id = item_id(kind, self._request_id, block.output_index)
        self._output.append(None)
        return self._emit(
            "response.output_item.added", output_index=block.output_index, item=item | {"id": block.item_id}
        )

    def _done(self, block: _Block, item: JsonDict) -> JsonDict:
        self._output[block.output_index] = item
        return self._emit("response.output_item.done", output_index=block.output_index, item=item)

    def _where(self, block: _Block) -> JsonDict:
        return {"item_id": block.item_id, "output_index": block.output_index}

    # ------------------------------------------------------------ events

    def _on_message_start(self, data: JsonDict) -> list[JsonDict]:
        return self._begin()

    def _on_message_stop(self, data: JsonDict) -> list[JsonDict]:
        events = self._begin()
        for index in list(self._blocks):  # Anthropic stops every block first; a cut one is closed here
            events += self._on_block_stop({"index": index})
        reason = incomplete_reason(self._state.stop_reason)
        output = [item for item in self._output if item is not None]
        status = "incomplete" if reason else "completed"
        return [*events, self._emit(f"response.{status}", response=self._response(status, output, reason))]

    def _on_block_start(self, data: JsonDict) -> list[JsonDict]:
        events = self._begin()
        content = data.get("content_block") or {}
        block = _Block(kind=str(content.get("type")))
        if block.kind == "text":
            events.append(self._announce(block, "message", message_item("", "", status="in_progress")))
            part = output_text_part("")
            events.append(self._emit("response.content_part.added", **self._where(block), content_index=0, part=part))
            events += self._text(block, content.get("text"))
        elif block.kind in ("thinking", "redacted_thinking"):
            block.signature, block.data = str(content.get("signature") or ""), str(content.get("data") or "")
            events.append(self._announce(block, "reasoning", {"type": "reasoning", "summary": []}))
            events += self._thinking(block, content.get("thinking"))
        elif block.kind == "tool_use":
            block.call_id, block.name = str(content.get("id") or ""), str(content.get("name") or "")
        else:
            return events  # server-tool blocks: none are asked for, and Responses has no counterpart
        self._blocks[_index(data)] = block
        return events

    def _on_block_delta(self, data: JsonDict) -> list[JsonDict]:
        block = self._blocks.get(_index(data))
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if block is None:
            return []
        if kind == "text_delta" and block.kind == "text":
            return self._text(block, delta.get("text"))
        if kind == "thinking_delta" and block.kind == "thinking":
            return self._thinking(block, delta.get("thinking"))
        if kind == "signature_delta" and block.kind == "thinking":
            block.signature += str(delta.get("signature") or "")
        elif kind == "input_json_delta" and block.kind == "tool_use":
            return self._tool_input(block, delta.get("partial_json"))
        return []

    def _on_block_stop(self, data: JsonDict) -> list[JsonDict]:
        block = self._blocks.pop(_index(data), None)
        if block is None:
            return []
        text = "".join(block.parts)
        where = self._where(block)
        if block.kind == "text":
            part = output_text_part(text)
            return [
                self._emit("response.output_text.done", **where, content_index=0, text=text, logprobs=[]),
                self._emit("response.content_part.done", **where, content_index=0, part=part),
                self._done(block, message_item(block.item_id, text)),
            ]
        if block.kind == "tool_use":
            return self._tool_done(block, text)
        events = []
        if block.summary_open:
            part = {"type": "summary_text", "text": text}
            events.append(self._emit("response.reasoning_summary_text.done", **where, summary_index=0, text=text))
            events.append(self._emit("response.reasoning_summary_part.done", **where, summary_index=0, part=part))
        content = {"type": block.kind, "thinking": text, "signature": block.signature, "data": block.data}
        return [*events, self._done(block, reasoning_item(block.item_id, content))]

    # ------------------------------------------------------------ blocks

    def _text(self, block: _Block, text: Any) -> list[JsonDict]:
        if not isinstance(text, str) or not text:
            return []
        block.parts.append(text)
        return [
            self._emit("response.output_text.delta", **self._where(block), content_index=0, delta=text, logprobs=[])
        ]

    def _thinking(self, block: _Block, text: Any) -> list[JsonDict]:
        if not isinstance(text, str) or not text:
            return []
        events = []
        if not block.summary_open:
            block.summary_open = True
            part = {"type": "summary_text", "text": ""}
            events.append(
                self._emit("response.reasoning_summary_part.added", **self._where(block), summary_index=0, part=part)
            )
        block.parts.append(text)
        delta = self._emit("response.reasoning_summary_text.delta", **self._where(block), summary_index=0, delta=text)
        return [*events, delta]

    def _tool_input(self, block: _Block, fragment: Any) -> list[JsonDict]:
        if not isinstance(fragment, str) or not fragment:
            return []
        block.parts.append(fragment)
        if block.output_index < 0:
            match = _FIRST_KEY.match("".join(block.parts))
            return [] if match is None else self._announce_tool(block, match.group(1) == CUSTOM_TOOL_INPUT)
        return self._tool_delta(block, fragment)

    def _announce_tool(self, block: _Block, custom: bool) -> list[JsonDict]:
        block.custom = custom
        if custom:
            block.decoder = _FreeformInput()
            item = custom_tool_call_item("", block.call_id, block.name, "")
            added = self._announce(block, "custom_tool_call", item)
        else:
            item = function_call_item("", block.call_id, block.name, "", status="in_progress")
            added = self._announce(block, "function_call", item)
        return [added, *self._tool_delta(block, "".join(block.parts))]

    def _tool_delta(self, block: _Block, fragment: str) -> list[JsonDict]:
        if not block.custom:
            if not fragment:
                return []
            return [self._emit("response.function_call_arguments.delta", **self._where(block), delta=fragment)]
        text = block.decoder.feed(fragment) if block.decoder else ""
        if not text:
            return []
        block.decoded.append(text)
        return [self._emit("response.custom_tool_call_input.delta", **self._where(block), delta=text)]

    def _tool_done(self, block: _Block, raw: str) -> list[JsonDict]:
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except ValueError:
            parsed = None
        events = []
        if block.output_index < 0:  # an empty or unusual input: its whole text decides now
            events = self._announce_tool(block, custom_tool_input(parsed) is not None)
        where = self._where(block)
        if not block.custom:
            arguments = raw if raw.strip() else "{}"
            events.append(self._emit("response.function_call_arguments.done", **where, arguments=arguments))
            return [*events, self._done(block, function_call_item(block.item_id, block.call_id, block.name, arguments))]
        final = custom_tool_input(parsed)
        final = raw if final is None else final
        sent = "".join(block.decoded)
        if final.startswith(sent) and len(final) > len(sent):
            events.append(self._emit("response.custom_tool_call_input.delta", **where, delta=final[len(sent) :]))
        events.append(self._emit("response.custom_tool_call_input.done", **where, input=final))
        return [*events, self._done(block, custom_tool_call_item(block.item_id, block.call_id, block.name, final))]


def _index(data: JsonDict) -> int:
    index = data.get("index")
    return index if isinstance(index, int) else -1


def _stream_error(error: Any) -> UpstreamError:
    """An ``error`` event mid-stream (``overloaded_error``…), in the provider's own words."""
    details = error if isinstance(error, dict) else {}
    message = str(details.get("message") or "The upstream stream failed.")
    failure = UpstreamError(message, code=details.get("type") or None)
    failure.upstream_message = message
    return failure
