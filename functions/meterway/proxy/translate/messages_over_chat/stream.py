"""OpenAI ``chat.completion.chunk`` stream -> Anthropic Messages stream events, chunk by chunk.

Anthropic's order: ``message_start``, then per content block ``content_block_start``, its deltas and
``content_block_stop``, then one ``message_delta`` (stop reason and cumulative usage) and
``message_stop``. ``message_start`` goes out with the first chunk, its usage all zeros: OpenAI
reports the prompt's size only in its last chunk. Each delta goes out in the event its chunk
arrives in: reasoning as ``thinking_delta`` (in a thinking block with an empty signature, see
``response``), text and refusals as ``text_delta``, tool arguments as ``input_json_delta``. A block
ends when a delta of another kind or another tool call begins, and the last one when the
``finish_reason`` arrives. The ``message_delta`` must carry the usage, which comes in a chunk of its
own (``choices: []``) after the ``finish_reason``: it and ``message_stop`` follow that chunk, or
``[DONE]`` when a server sends no usage.

What the format forces to wait: a tool call's block starts once its name is known (OpenAI sends it
with the call's first fragment; until then fragments are kept). A block cannot be reopened, so a
server that interleaves fragments of parallel tool calls breaks the stream with a ``ValueError``
naming it rather than misplacing arguments. Arguments are relayed as sent, even when they do not
add up to JSON (the non-streamed answer keeps those under ``_raw_arguments``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meterway.ledger.models import TokenUsage
from meterway.proxy.formats.base import event_data
from meterway.proxy.formats.chat import DONE, read_usage
from meterway.proxy.formats.messages import message_start
from meterway.proxy.translate.base import upstream_error
from meterway.proxy.translate.messages_over_chat.response import (
    anthropic_usage,
    message_id,
    reasoning_text,
    stop_reason,
    tool_use_id,
)

JsonDict = dict[str, Any]
BlockKey = str | int  # "text", "thinking", or the OpenAI index of a tool call


@dataclass
class _ToolCall:
    id: str
    name: str = ""
    pending: str = ""  # arguments received before the block could start
    started: bool = False
    done: bool = False


class ChatStreamTranslator:
    """Turns OpenAI chunks into Anthropic events, one server-sent event at a time (see
    ``StreamAdapter``; the module's docstring gives the order)."""

    client_usage: JsonDict | None = None  # Chat's usage is not Anthropic's: the encoder prices ``usage``

    def __init__(self, *, model: str, request_id: str) -> None:
        self._model = model
        self._request_id = request_id
        self._started = False
        self._closed = False
        self._index = -1  # Anthropic's index of the last block started
        self._open: BlockKey | None = None
        self._tools: dict[int, _ToolCall] = {}
        self._upstream_finish: str | None = None
        self._refused = False
        self._usage: JsonDict | None = None
        self.finish_reason: str | None = None
        self.output_chars = 0
        self.finished = False
        self.ended = False

    @property
    def usage(self) -> TokenUsage:
        return read_usage(self._usage or {})

    @property
    def usage_reported(self) -> bool:
        return self._usage is not None

    def feed(self, event: str, data: str) -> list[JsonDict]:
        """Anthropic's events for one upstream event (its name, unused by OpenAI, and its data).

        Raises ``UpstreamError`` for a chunk that reports an error, ``ValueError`` for data that is
        not a JSON object.
        """
        del event
        if not data.strip():
            return []  # a keep-alive
        if data.strip() == DONE:
            self.ended = True
            return self._close()
        if self._closed:
            return []
        chunk = event_data(data)
        if not isinstance(chunk, dict):
            raise ValueError("An OpenAI stream chunk must be a JSON object.")
        if chunk.get("error"):
            raise upstream_error(chunk["error"])
        events = self._start()
        choices = chunk.get("choices") or []
        for choice in choices:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                events += self._choice(choice)
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
            # OpenAI's usage chunk has no choices; servers that count on every chunk end after the finish.
            if not choices or self._upstream_finish:
                events += self._close()
        return events

    # ---------------------------------------------------------------- message

    def _start(self) -> list[JsonDict]:
        if self._started:
            return []
        self._started = True
        return [message_start(message_id(self._request_id), self._model, anthropic_usage(TokenUsage()))]

    def _close(self) -> list[JsonDict]:
        if self._closed:
            return []
        events = self._start()
        for index, tool in self._tools.items():
            if not tool.started:
                events += self._start_tool(index, tool)
        events += self._stop_block()
        self.finish_reason = self._stop_reason()
        delta = {"stop_reason": self.finish_reason, "stop_sequence": None}
        events.append({"type": "message_delta", "delta": delta, "usage": anthropic_usage(self.usage)})
        events.append({"type": "message_stop"})
        self._closed = self.finished = True
        return events

    def _stop_reason(self) -> str:
        return stop_reason(self._upstream_finish, called_tools=bool(self._tools), refused=self._refused)

    # ---------------------------------------------------------------- content blocks

    def _choice(self, choice: JsonDict) -> list[JsonDict]:
        delta = choice.get("delta") or {}
        events = self._text("thinking", reasoning_text(delta))
        for name in ("content", "refusal"):
            value = delta.get(name)
            if isinstance(value, str) and value:
                self._refused = self._refused or name == "refusal"
                events += self._text("text", value)
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                events += self._tool_fragment(call)
        if choice.get("finish_reason"):
            self._upstream_finish = choice["finish_reason"]
            self.finish_reason = self._stop_reason()
            events += self._stop_block()
        return events

    def _text(self, kind: str, text: str) -> list[JsonDict]:
        if not text:
            return []
        block = {"type": kind, kind: ""} | ({"signature": ""} if kind == "thinking" else {})
        events = self._switch_to(kind, block)
        self.output_chars += len(text)
        delta = {"type": f"{kind}_delta", kind: text}
        events.append({"type": "content_block_delta", "index": self._index, "delta": delta})
        return events

    def _tool_fragment(self, call: JsonDict) -> list[JsonDict]:
        index = self._tool_index(call)
        tool = self._tools.setdefault(index, _ToolCall(id=tool_use_id(self._request_id, index)))
        if tool.done:
            raise ValueError(
                f"The upstream sent arguments of tool call {index} after the next content block began; "
                "they cannot be placed in Anthropic's events."
            )
        function = call.get("function") or {}
        if not tool.started:
            if isinstance(call.get("id"), str) and call["id"]:
                tool.id = call["id"]
            if isinstance(function.get("name"), str) and function["name"]:
                tool.name = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self.output_chars += len(arguments)
            tool.pending += arguments
        # Its block cannot start before its name is known; once started, fragments go out at once.
        return self._start_tool(index, tool) if tool.name or tool.started else []

    def _tool_index(self, call: JsonDict) -> int:
        index = call.get("index")
        if isinstance(index, int):
            return index
        # Servers that send each call whole may leave out the index: a new id is a new call.
        call_id = call.get("id")
        for known, tool in self._tools.items():
            if call_id and tool.id == call_id:
                return known
        return len(self._tools) if call_id or not self._tools else max(self._tools)

    def _start_tool(self, index: int, tool: _ToolCall) -> list[JsonDict]:
        block = {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}
        events = self._switch_to(index, block)
        tool.started = True
        if tool.pending:
            delta = {"type": "input_json_delta", "partial_json": tool.pending}
            events.append({"type": "content_block_delta", "index": self._index, "delta": delta})
            tool.pending = ""
        return events

    def _switch_to(self, key: BlockKey, block: JsonDict) -> list[JsonDict]:
        if self._open == key:
            return []
        events = self._stop_block()
        self._index += 1
        self._open = key
        events.append({"type": "content_block_start", "index": self._index, "content_block": block})
        return events

    def _stop_block(self) -> list[JsonDict]:
        if self._open is None:
            return []
        if isinstance(self._open, int):
            self._tools[self._open].done = True
        self._open = None
        return [{"type": "content_block_stop", "index": self._index}]
