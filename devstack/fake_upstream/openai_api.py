"""OpenAI Chat Completions dialect: ``POST /v1/chat/completions``, stream and non-stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive

from .asgi import EventStreamResponse
from .common import KeyDialect, await_reply, begin, is_int, logged, new_id
from .context import Overflow, overflow
from .openai_plan import ChatPlan, chat_tools, completion_body, is_reasoning_model, plan_chat
from .openai_stream import stream_chat
from .prompt import openai_prompt_tokens

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_ERROR_TYPES = {401: "invalid_request_error", 429: "requests"}
MAX_CHOICES = 128

Problem = tuple[str, str | None, str | None]


class OpenAIDialect(KeyDialect):
    """OpenAI's ``Authorization: Bearer`` auth and ``{"error": {...}}`` envelope."""

    def error(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """An error in OpenAI's envelope."""
        error_type = "server_error" if status >= 500 else _ERROR_TYPES.get(status, "invalid_request_error")
        if status == 429 and code is None:
            code = "rate_limit_exceeded"
        payload = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
        all_headers = {"x-request-id": new_id("req_"), **(headers or {})}
        return JSONResponse(payload, status_code=status, headers=all_headers)

    def api_key(self, request: Request) -> str | None:
        """The bearer token, if any."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def auth_error(self, key: str | None) -> Response:
        """401 as OpenAI words it, for a missing or an incorrect key."""
        if not key:
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return self.error(401, message)
        return self.error(401, f"Incorrect API key provided: {key[:3]}***{key[-4:]}.", code="invalid_api_key")


OPENAI = OpenAIDialect()


def context_length_error(too_long: Overflow) -> Response:
    """The 400 a chat request gets when its messages do not fit the model's context window."""
    message = (
        f"This model's maximum context length is {too_long.window} tokens. However, your messages "
        f"resulted in {too_long.tokens} tokens. Please reduce the length of the messages."
    )
    return OPENAI.error(400, message, param="messages", code="context_length_exceeded")


def _validate_messages(messages: Any) -> Problem | None:
    if not isinstance(messages, list):
        return ("'messages' is a required property and must be an array", "messages", None)
    if not messages:
        return ("[] is too short - 'messages'", "messages", "empty_array")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            return (f"Invalid value for 'messages[{index}].role'.", f"messages[{index}].role", None)
    return None


def validate_chat(body: dict[str, Any]) -> Problem | None:
    """First problem of a chat completion body as (message, param, code), or None."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return ("you must provide a model parameter", "model", None)
    problem = _validate_messages(body.get("messages")) or _validate_tool_messages(body["messages"])
    if problem:
        return problem
    for name in ("max_tokens", "max_completion_tokens"):
        if body.get(name) is not None and not is_int(body[name]):
            return (f"Invalid '{name}': integer below minimum value 1.", name, "integer_below_min_value")
    if body.get("max_tokens") is not None and is_reasoning_model(model):
        message = (
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
        )
        return (message, "max_tokens", "unsupported_parameter")
    if "stream" in body and not isinstance(body["stream"], bool):
        return ("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    if body.get("stream_options") is not None and body.get("stream") is not True:
        return (
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            None,
        )
    return _validate_options(body)


def _validate_tool_messages(messages: list[dict[str, Any]]) -> Problem | None:
    """Tool results must answer the calls of the assistant message just before them, all of them."""
    pending: set[str] = set()
    caller: int | None = None
    for index, message in enumerate([*messages, {"role": "end"}]):
        role = message.get("role")
        if role == "tool":
            if caller is None:
                text = "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
                return (text, f"messages.[{index}].role", None)
            pending.discard(str(message.get("tool_call_id")))
            continue
        if pending and caller is not None:
            text = (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(sorted(pending))}"
            )
            return (text, f"messages.[{caller}].role", None)
        calls = message.get("tool_calls") if role == "assistant" else None
        caller = index if calls else None
        pending = {str(call.get("id")) for call in calls or [] if isinstance(call, dict)}
    return None


def _validate_options(body: dict[str, Any]) -> Problem | None:
    """``tools``, ``n``, ``tool_choice`` and ``response_format``."""
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(tool, dict) for tool in tools)):
        return ("Invalid type for 'tools': expected an array of objects.", "tools", "invalid_type")
    n = body.get("n")
    if n is not None and not (is_int(n) and n <= MAX_CHOICES):
        return (f"Invalid 'n': expected an integer between 1 and {MAX_CHOICES}.", "n", "invalid_value")
    choice = body.get("tool_choice")
    if choice is not None and not body.get("tools"):
        text = "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
        return (text, "tool_choice", None)
    forced = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if choice is not None and forced is not None and forced not in {tool.name for tool in chat_tools(body)}:
        return (f"Invalid value for 'tool_choice': no function named '{forced}' in 'tools'.", "tool_choice", None)
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and not isinstance(fmt.get("json_schema"), dict):
        text = "Missing required parameter: 'response_format.json_schema'."
        return (text, "response_format.json_schema", "missing_required_parameter")
    return None


def malformed_chat(plan: ChatPlan, stream: bool) -> Response:
    """A 200 answer whose JSON is truncated mid-object."""
    if not stream:
        broken = f'{{"id":"{plan.id}","object":"chat.completion","choices":[{{"index":0,"message":{{"con'
        return Response(broken, media_type="application/json")

    async def events(receive: Receive) -> AsyncIterator[bytes]:
        head = f'data: {{"id":"{plan.id}","object":"chat.completion.chunk",'
        yield f'{head}"choices":[{{"delta":{{"con\n\n'.encode()
        yield b"data: [DONE]\n\n"

    return EventStreamResponse(events)


@logged
async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions``."""
    exchange = await begin(request, OPENAI)
    if isinstance(exchange, Response):
        return exchange
    problem = validate_chat(exchange.body)
    if problem:
        message, param, code = problem
        return OPENAI.error(400, message, param=param, code=code)
    prompt = openai_prompt_tokens(exchange.body)
    too_long = overflow(exchange, exchange.body["model"], len(prompt))
    if too_long:
        return context_length_error(too_long)
    plan = plan_chat(exchange, prompt)
    exchange.record.id = plan.id
    stream = exchange.body.get("stream") is True
    if exchange.fault_kind() == "malformed":
        return malformed_chat(plan, stream)
    if stream:
        include_usage = bool((exchange.body.get("stream_options") or {}).get("include_usage"))
        return stream_chat(exchange, plan, include_usage)
    output_tokens = max(sum(choice.output_tokens for choice in plan.choices), 1)
    ended = await await_reply(exchange, output_tokens, plan.usage())
    return ended or JSONResponse(completion_body(plan), headers={"x-request-id": new_id("req_")})
