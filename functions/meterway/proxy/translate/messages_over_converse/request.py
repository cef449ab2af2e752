"""A Messages request as Bedrock's Converse request, for the Bedrock models that do not take
Anthropic's body (Nova, Llama, Mistral…).

Converse is Messages in other words: ``system`` and ``messages`` of content blocks, tools as
``toolSpec``s, ``cache_control`` as a ``cachePoint`` block after the block it marks, the sampling
parameters in ``inferenceConfig``. A request-wide ``cache_control`` (Anthropic's automatic
caching) is a cache point after the last message. Thinking is dropped, as on other models that do
not think: it changes how the answer is reached, not what was asked. What Converse cannot say
(structured output, ``top_k``, images by URL, server tools, ``tool_choice: none``) is the client's
400, before anything is reserved.
"""

from __future__ import annotations

from typing import Any

from meterway.core.errors import InvalidRequest

JsonDict = dict[str, Any]

_CACHE_POINT: JsonDict = {"cachePoint": {"type": "default"}}
_IMAGE_FORMATS = {"image/jpeg": "jpeg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
_INFERENCE = {
    "max_tokens": "maxTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "stop_sequences": "stopSequences",
}
# Messages fields with no Converse equivalent; asking for them is a 400 that names them.
_UNSUPPORTED = {
    "output_format": "structured output",
    "top_k": "top_k",
    "mcp_servers": "MCP servers",
    "container": "containers",
}
# Messages fields that shape nothing Converse does: dropped.
_IGNORED = frozenset(
    {"model", "stream", "metadata", "service_tier", "anthropic_version", "thinking", "context_management"}
)


def messages_to_converse(body: JsonDict, model_id: str) -> JsonDict:
    """The Converse request for a Messages ``body`` sent to ``model_id``."""
    for name, feature in _UNSUPPORTED.items():
        if body.get(name):
            raise InvalidRequest(f"{feature} is not available for {model_id} on Bedrock.", code="unsupported_parameter")
    # output_config's effort only tunes how hard Claude works (dropped); its format is structured output.
    if isinstance(body.get("output_config"), dict) and body["output_config"].get("format"):
        raise InvalidRequest(
            f"structured output is not available for {model_id} on Bedrock.", code="unsupported_parameter"
        )
    unknown = (
        set(body)
        - set(_UNSUPPORTED)
        - set(_INFERENCE)
        - _IGNORED
        - {"messages", "system", "tools", "tool_choice", "cache_control", "output_config"}
    )
    if unknown:
        raise InvalidRequest(f"{', '.join(sorted(unknown))} cannot be sent to {model_id} on Bedrock.")
    system, messages = _conversation(body)
    converse: JsonDict = {"messages": messages}
    last = messages[-1]["content"]
    if body.get("cache_control") and last[-1] != _CACHE_POINT:
        last.append(_CACHE_POINT)
    if system:
        converse["system"] = system
    config = {converse_name: body[name] for name, converse_name in _INFERENCE.items() if body.get(name) is not None}
    if config:
        converse["inferenceConfig"] = config
    if body.get("tools"):
        converse["toolConfig"] = _tool_config(body["tools"], body.get("tool_choice"), model_id)
    return converse


def _conversation(body: JsonDict) -> tuple[list[JsonDict], list[JsonDict]]:
    """The system prompt and the turns. Converse has no system turn: a ``system`` message in the
    conversation (Claude Code sends some) joins the system prompt, and the turns either side of it,
    now of one role, become one, as Anthropic reads consecutive turns of one role."""
    system = _system(body["system"]) if body.get("system") else []
    turns: list[JsonDict] = []
    for i, message in enumerate(body["messages"]):
        if message.get("role") == "system":
            system += _system(message["content"])
            continue
        turn = _message(message, f"messages[{i}]")
        if turns and turns[-1]["role"] == turn["role"]:
            turns[-1]["content"] += turn["content"]
        else:
            turns.append(turn)
    if not turns:
        raise InvalidRequest("messages: a conversation needs a user or assistant turn.")
    return system, turns


def _system(system: Any) -> list[JsonDict]:
    if isinstance(system, str):
        return [{"text": system}]
    if not isinstance(system, list):
        raise InvalidRequest("system: a string or a list of text blocks.")
    blocks: list[JsonDict] = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise InvalidRequest(f"system[{i}]: only text blocks are accepted in the system prompt.")
        blocks += _cached({"text": block["text"]}, block)
    return blocks


def _message(message: Any, where: str) -> JsonDict:
    content = message["content"]
    if isinstance(content, str):
        return {"role": message["role"], "content": [{"text": content}]}
    blocks: list[JsonDict] = []
    for i, block in enumerate(content):
        blocks += _cached(_block(block, f"{where}.content[{i}]"), block)
    return {"role": message["role"], "content": blocks}


def _cached(converted: JsonDict, block: JsonDict) -> list[JsonDict]:
    """The block, followed by a cache point where the client put a cache breakpoint."""
    return [converted, _CACHE_POINT] if block.get("cache_control") else [converted]


def _block(block: JsonDict, where: str) -> JsonDict:
    kind = block.get("type")
    if kind == "text":
        return {"text": block["text"]}
    if kind == "image":
        return {"image": _image(block.get("source") or {}, where)}
    if kind == "document":
        return {"document": _document(block.get("source") or {}, where)}
    if kind == "tool_use":
        return {"toolUse": {"toolUseId": block["id"], "name": block["name"], "input": block.get("input") or {}}}
    if kind == "tool_result":
        return {"toolResult": _tool_result(block, where)}
    if kind == "thinking":
        return {"reasoningContent": {"reasoningText": {"text": block["thinking"], "signature": block.get("signature")}}}
    if kind == "redacted_thinking":
        return {"reasoningContent": {"redactedContent": block["data"]}}
    raise InvalidRequest(f"{where}: content blocks of type {kind!r} cannot be sent to this Bedrock model.")


def _image(source: JsonDict, where: str) -> JsonDict:
    image_format = _IMAGE_FORMATS.get(str(source.get("media_type")))
    if source.get("type") != "base64" or image_format is None:
        raise InvalidRequest(f"{where}: images for this Bedrock model must be base64 JPEG, PNG, GIF or WebP.")
    return {"format": image_format, "source": {"bytes": source["data"]}}


def _document(source: JsonDict, where: str) -> JsonDict:
    if source.get("type") != "base64" or source.get("media_type") != "application/pdf":
        raise InvalidRequest(f"{where}: documents for this Bedrock model must be base64 PDFs.")
    return {
        "format": "pdf",
        "name": where.replace("[", "-").replace("]", "").replace(".", "-"),
        "source": {"bytes": source["data"]},
    }


def _tool_result(block: JsonDict, where: str) -> JsonDict:
    content = block.get("content")
    parts = [{"text": content}] if isinstance(content, str) else []
    for i, part in enumerate(content if isinstance(content, list) else []):
        converted = _block(part, f"{where}.content[{i}]")
        if not ({"text", "image", "document"} & set(converted)):
            raise InvalidRequest(f"{where}.content[{i}]: a tool result holds text, images or documents.")
        parts.append(converted)
    result: JsonDict = {"toolUseId": block["tool_use_id"], "content": parts or [{"text": ""}]}
    if block.get("is_error"):
        result["status"] = "error"
    return result


def _tool_config(tools: list[Any], choice: Any, model_id: str) -> JsonDict:
    specs: list[JsonDict] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or "input_schema" not in tool:
            raise InvalidRequest(f"tools[{i}]: server tools are not available for {model_id} on Bedrock.")
        spec: JsonDict = {"name": tool["name"], "inputSchema": {"json": tool["input_schema"]}}
        if tool.get("description"):
            spec["description"] = tool["description"]
        specs += _cached({"toolSpec": spec}, tool)
    config: JsonDict = {"tools": specs}
    if isinstance(choice, dict) and choice.get("type") in ("auto", "any", "tool"):
        kind = choice["type"]
        config["toolChoice"] = {"tool": {"name": choice["name"]}} if kind == "tool" else {kind: {}}
    elif isinstance(choice, dict) and choice.get("type") == "none":
        raise InvalidRequest(
            f"tool_choice 'none' is not available for {model_id} on Bedrock.", code="unsupported_parameter"
        )
    return config
