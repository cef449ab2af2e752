"""OpenAI Responses ``input`` items -> Anthropic system blocks and turns.

Consecutive items of one role share a turn; a user turn puts its ``tool_result`` blocks first and
an assistant turn that calls tools its thinking blocks first (Anthropic requires both):

* ``message``: ``system``/``developer`` -> system text blocks (in order, after ``instructions``);
  ``user``/``assistant`` -> a turn: text parts (``input_text``, ``output_text``, ``refusal``) ->
  text, ``input_image`` (data or http(s) URL) -> image, ``input_file`` (PDF data or URL) -> document;
* ``function_call`` / ``custom_tool_call`` -> ``tool_use`` (id = ``call_id``; named
  "<namespace>--<name>" when it has a ``namespace``; a custom call's text as its ``CUSTOM_TOOL_INPUT`` property; arguments that are no JSON object, as a call cut off by
  ``max_tokens`` leaves them, as the ``INVALID_ARGUMENTS`` string); ``function_call_output`` / ``custom_tool_call_output`` ->
  ``tool_result`` (``tool_use_id`` = ``call_id``, the output string or parts as its content);
* ``reasoning`` -> the thinking block its ``encrypted_content`` carries when this translation made
  it (``response.read_thinking_envelope``); others (OpenAI's own) are skipped: they mean nothing here;
* items of hosted tools (``web_search_call``, ``local_shell_call``…) and outputs answering them are
  skipped, like the tools themselves; ``compaction`` (history encrypted by OpenAI) and
  ``item_reference`` (a stored item) are refused: the conversation they stand for cannot be read;
* ``additional_tools`` (Codex's way to offer tools inside ``input``) -> tools, as if in ``tools``.
An assistant turn of thinking alone (an answer cut off while thinking) says nothing and is left out.
"""

from __future__ import annotations

import json
from typing import Any

from meterway.core.errors import InvalidRequest
from meterway.proxy.translate.anthropic_content import content_blocks, data_url, image_block
from meterway.proxy.translate.responses_over_messages.response import (
    CUSTOM_TOOL_INPUT,
    read_thinking_envelope,
    upstream_tool_name,
)

JsonDict = dict[str, Any]

# Tool types that run on OpenAI's side (or need it): left out, and so are their calls in the history.
_HOSTED_CALL_ITEMS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "image_generation_call",
        "code_interpreter_call",
        "computer_call",
        "local_shell_call",
        "shell_call",
        "apply_patch_call",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "tool_search_call",
    }
)
_HOSTED_OUTPUT_ITEMS = frozenset(
    {
        "computer_call_output",
        "local_shell_call_output",
        "shell_call_output",
        "apply_patch_call_output",
        "mcp_approval_response",
        "tool_search_output",
    }
)
# Where the text of function call arguments that are not a JSON object goes in a tool_use input.
INVALID_ARGUMENTS = "invalid_json_arguments"
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "refusal"})


class Conversation:
    """The ``input`` items as system blocks and alternating turns."""

    def __init__(self) -> None:
        self.system: list[JsonDict] = []
        self.tools: list[Any] = []  # those of ``additional_tools`` items, offered like ``tools``
        self._turns: list[tuple[str, list[JsonDict]]] = []
        self._skipped_calls: set[str] = set()

    def add_input(self, items: Any) -> None:
        if isinstance(items, str):
            self._turns.append(("user", text_blocks(items, "input")))
            return
        if not isinstance(items, list):
            raise InvalidRequest("input must be a string or a list of items")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidRequest(f"input[{i}] must be an object")
            self._add(item, f"input[{i}]")

    def _add(self, item: JsonDict, where: str) -> None:
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            self._message(item, where)
        elif kind in ("function_call", "custom_tool_call"):
            self._turns.append(("assistant", [_tool_use(item, where)]))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            if _call_id(item, where) not in self._skipped_calls:
                self._turns.append(("user", [_tool_result(item, where)]))
        elif kind == "reasoning":
            block = read_thinking_envelope(item.get("encrypted_content"))
            if block is not None:
                self._turns.append(("assistant", [block]))
        elif kind == "additional_tools":
            self.tools.extend(item.get("tools") or [])
        elif kind in _HOSTED_CALL_ITEMS:
            if isinstance(item.get("call_id"), str):
                self._skipped_calls.add(item["call_id"])
        elif kind not in _HOSTED_OUTPUT_ITEMS:
            raise InvalidRequest(_unreadable_item(kind, where))

    def _message(self, item: JsonDict, where: str) -> None:
        role, content = item.get("role"), item.get("content")
        if role in ("system", "developer"):
            self.system.extend(text_blocks(content, f"{where}.content"))
        elif role == "user":
            self._turns.append(("user", _content_blocks(content, f"{where}.content")))
        elif role == "assistant":
            self._turns.append(("assistant", text_blocks(content, f"{where}.content")))
        else:
            raise InvalidRequest(f"{where}.role must be one of user, assistant, system, developer")

    def messages(self) -> list[JsonDict]:
        # An assistant turn of thinking alone (an answer cut off while thinking) says nothing: left out.
        merged = [
            turn
            for turn in _merge(self._turns)
            if turn["role"] == "user"
            or any(b["type"] not in ("thinking", "redacted_thinking") for b in turn["content"])
        ]
        messages = _merge([(turn["role"], turn["content"]) for turn in merged])
        if not messages:
            raise InvalidRequest("input must contain at least one user or assistant message")
        for message in messages:
            blocks = message["content"]
            if message["role"] == "user":
                blocks.sort(key=lambda block: block["type"] != "tool_result")
            elif any(block["type"] == "tool_use" for block in blocks):
                blocks.sort(key=lambda block: block["type"] not in ("thinking", "redacted_thinking"))
        return messages


def _merge(turns: list[tuple[str, list[JsonDict]]]) -> list[JsonDict]:
    merged: list[JsonDict] = []
    for role, blocks in turns:
        if not blocks:
            continue
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": role, "content": list(blocks)})
    return merged


def _unreadable_item(kind: Any, where: str) -> str:
    if kind in ("compaction", "compaction_summary"):
        return f"{where}: a '{kind}' item holds history encrypted by OpenAI, which Anthropic models cannot read"
    if kind == "item_reference":
        return f"{where}: the gateway keeps no items; send the item itself instead of an item_reference"
    return f"{where}: input items of type {kind!r} are not supported for Anthropic models"


def _call_id(item: JsonDict, where: str) -> str:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.call_id is required")
    return call_id


def _tool_use(item: JsonDict, where: str) -> JsonDict:
    call_id, name, namespace = _call_id(item, where), item.get("name"), item.get("namespace")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name is required")
    if item["type"] == "custom_tool_call":
        if not isinstance(item.get("input"), str):
            raise InvalidRequest(f"{where}.input must be a string")
        custom_input = {CUSTOM_TOOL_INPUT: item["input"]}
        return {"type": "tool_use", "id": call_id, "name": upstream_tool_name(name, namespace), "input": custom_input}
    arguments = item.get("arguments") or "{}"
    if not isinstance(arguments, str):
        raise InvalidRequest(f"{where}.arguments must be a string")
    try:
        tool_input = json.loads(arguments)
    except ValueError:
        tool_input = None
    if not isinstance(tool_input, dict):
        # A call cut off mid-arguments (a max_tokens stop) stays in the client's history: refusing
        # it would fail every later turn, so its text is kept as it was, under INVALID_ARGUMENTS.
        tool_input = {INVALID_ARGUMENTS: arguments}
    return {"type": "tool_use", "id": call_id, "name": upstream_tool_name(name, namespace), "input": tool_input}


def _tool_result(item: JsonDict, where: str) -> JsonDict:
    result: JsonDict = {"type": "tool_result", "tool_use_id": _call_id(item, where)}
    output = item.get("output")
    if isinstance(output, list):
        blocks = _content_blocks(output, f"{where}.output")
        if blocks:
            result["content"] = blocks
    elif isinstance(output, str):
        if output:  # Anthropic refuses empty text; a result without content is a valid empty one
            result["content"] = output
    elif output is not None:
        raise InvalidRequest(f"{where}.output must be a string or a list of content parts")
    return result


# ---------------------------------------------------------------- content


def text_blocks(content: Any, where: str) -> list[JsonDict]:
    blocks = _content_blocks(content, where)
    if any(block["type"] != "text" for block in blocks):
        raise InvalidRequest(f"{where}: only text is accepted here")
    return blocks


def _content_blocks(content: Any, where: str) -> list[JsonDict]:
    return content_blocks(content, where, _content_block)


def _content_block(part: Any, where: str) -> JsonDict | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in _TEXT_PARTS:
        text = part.get("refusal" if kind == "refusal" else "text")
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}.text must be a string")
        return {"type": "text", "text": text} if text else None
    if kind == "input_image":
        return _image_block(part, where)
    if kind == "input_file":
        return _document_block(part, where)
    raise InvalidRequest(
        f"{where}: content parts of type {kind!r} are not supported for Anthropic models "
        "(supported: input_text, output_text, refusal, input_image, input_file with a PDF)"
    )


def _image_block(part: JsonDict, where: str) -> JsonDict:
    url = part.get("image_url")
    if isinstance(url, dict):  # the Chat shape, which some clients send here too
        url = url.get("url")
    if not isinstance(url, str):
        raise InvalidRequest(f"{where}: images need an image_url (file_id needs the files the gateway does not keep)")
    return image_block(url, where, "image_url")


def _document_block(part: JsonDict, where: str) -> JsonDict:
    if isinstance(part.get("file_url"), str) and part["file_url"].startswith(("https://", "http://")):
        return {"type": "document", "source": {"type": "url", "url": part["file_url"]}}
    if not isinstance(part.get("file_data"), str):
        raise InvalidRequest(
            f"{where}: files need file_data or file_url (file_id needs files the gateway does not keep)"
        )
    media_type, data = data_url(part["file_data"], where, "file_data")
    if media_type != "application/pdf":
        raise InvalidRequest(f"{where}: only PDF files are supported for Anthropic models, not {media_type!r}")
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}
