"""Amazon Bedrock Runtime dialect: SigV4 auth, AWS's error shapes, model ids, and InvokeModel.

``POST /model/{modelId}/invoke`` and ``/invoke-with-response-stream`` serve Anthropic models with
Anthropic's Messages body (``anthropic_version: "bedrock-2023-05-31"``, no ``model`` nor
``stream``), planned and streamed by the Messages dialect's own code; Converse is in
``bedrock_converse``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .anthropic_api import MessageRefused, checked_plan, malformed_message
from .anthropic_plan import MessagePlan
from .anthropic_stream import message_events, streamed_usage
from .bedrock_auth import UNRECOGNIZED_CLIENT, SignatureRefused, check_signature
from .bedrock_stream import StreamEvent, malformed_stream, stream_events
from .common import Exchange, await_reply, begin, logged
from .config import FakeUpstreamConfig

BEDROCK_VERSION = "bedrock-2023-05-31"
_ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_MESSAGES = {
    400: "Malformed input request, please reformat your input and try again.",
    403: "You don't have access to the model with the specified model ID.",
    404: "Could not resolve the foundation model from the provided model identifier.",
    408: "Model has timed out in processing the request. Try your request again.",
    424: "Received error from the model. Try your request again.",
    429: "Too many requests, please wait before trying again.",
    500: "The system encountered an unexpected error during processing. Try your request again.",
    503: "Bedrock is unable to process your request.",
}
TOO_LONG = "Input is too long for requested model."
INVALID_MODEL = "The provided model identifier is invalid."
# A base model id (provider.name[-version][:n]), an inference profile id (a geography before it) or an ARN.
_MODEL_ID = re.compile(
    r"(?:arn:aws[a-z-]*:bedrock:[a-z0-9-]*:\d{0,12}:[a-z-]+/)?(?:[a-z-]+\.)?[a-z0-9-]+\.[a-z0-9.:-]+"
)
_GEOGRAPHIES = ("us.", "us-gov.", "eu.", "apac.", "jp.", "au.", "ca.", "global.")


class BedrockDialect:
    """SigV4-signed requests and ``{"message"}`` errors named by ``x-amzn-ErrorType``."""

    def error(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """An AWS JSON error; ``code`` names the exception when the status alone does not."""
        error_type = code or _ERROR_TYPES.get(
            status, "InternalServerException" if status >= 500 else "ValidationException"
        )
        return JSONResponse(
            {"message": message},
            status_code=status,
            headers={
                **request_id(),
                "x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                **(headers or {}),
            },
        )

    def authenticate(self, request: Request, body: bytes, config: FakeUpstreamConfig) -> Response | None:
        """403 unless the request is SigV4-signed for Bedrock (by the configured key and secret, if any)."""
        try:
            access_key = check_signature(request, body, config.aws_secret_access_key)
        except SignatureRefused as refusal:
            return self.error(403, str(refusal), code=refusal.error_type)
        if config.aws_access_key_id is not None and access_key != config.aws_access_key_id:
            return self.error(403, UNRECOGNIZED_CLIENT, code="UnrecognizedClientException")
        return None

    def fault_message(self, status: int) -> str:
        """Bedrock's own wording for ``status``."""
        return _MESSAGES.get(status, f"Injected fault with status {status}.")


BEDROCK = BedrockDialect()


def base_model(model_id: str) -> str:
    """The foundation model behind an id, an inference profile or an ARN: ``anthropic.claude-...-v1:0``."""
    name = model_id.rsplit("/", 1)[-1]
    return next((name[len(geo) :] for geo in _GEOGRAPHIES if name.startswith(geo)), name)


def is_anthropic(model_id: str) -> bool:
    """Whether InvokeModel takes Anthropic's Messages body for this model."""
    return base_model(model_id).startswith("anthropic.")


def anthropic_name(model_id: str) -> str:
    """The model name Anthropic's answers carry on Bedrock: ``claude-sonnet-4-5-20250929``."""
    return re.sub(r"-v\d+(:\d+)?$", "", base_model(model_id).removeprefix("anthropic."))


def request_id() -> dict[str, str]:
    """The ``x-amzn-RequestId`` header every Bedrock answer carries."""
    return {"x-amzn-RequestId": str(uuid.uuid4())}


def bedrock_plan(exchange: Exchange, model_id: str, tool_prefix: str) -> MessagePlan | Response:
    """Plan the reply to a Messages body as Bedrock's Claude gives it (``msg_bdrk_...`` ids, tool ids
    starting with ``tool_prefix``), or the ValidationException that refuses it."""
    try:
        plan = checked_plan(exchange)
    except MessageRefused as refusal:
        return BEDROCK.error(400, TOO_LONG if refusal.too_long else str(refusal))
    plan.id = plan.id.replace("msg_", "msg_bdrk_", 1)
    plan.model = anthropic_name(model_id)
    for call in plan.tool_calls:
        call.id = tool_prefix + call.id.split("_", 1)[1][-24:]
    exchange.record.id = plan.id
    return plan


async def bedrock_begin(request: Request) -> Exchange | Response:
    """Begin a Bedrock request: the model comes from the URL and must be a valid identifier,
    and the operation's name says whether it streams."""
    model_id: str = request.path_params["model_id"]
    exchange = await begin(request, BEDROCK, model=model_id, stream=request.url.path.endswith("-stream"))
    if isinstance(exchange, Response):
        return exchange
    return exchange if _MODEL_ID.fullmatch(model_id) else BEDROCK.error(400, INVALID_MODEL)


def _invoke_problem(model_id: str, body: dict[str, Any]) -> str | None:
    if not is_anthropic(model_id):
        return f"The fake serves InvokeModel for Anthropic models only: use Converse for {model_id}."
    for key in ("model", "stream"):
        if key in body:
            return f"Malformed input request: #: extraneous key [{key}] is not permitted, please reformat your input and try again."
    if "anthropic_version" not in body:
        return "Malformed input request: #: required key [anthropic_version] not found, please reformat your input and try again."
    if body["anthropic_version"] != BEDROCK_VERSION:
        return f"Invalid API version: anthropic_version must be {BEDROCK_VERSION}."
    return None


def _metrics(exchange: Exchange, plan: MessagePlan) -> dict[str, int]:
    usage = plan.usage()
    return {
        "inputTokenCount": usage["input_tokens"],
        "outputTokenCount": usage["output_tokens"],
        "invocationLatency": round(exchange.generation_time(plan.output_tokens) * 1000),
        "firstByteLatency": round(exchange.first_token_s * 1000),
        "cacheReadInputTokenCount": usage["cache_read_input_tokens"],
        "cacheWriteInputTokenCount": usage["cache_creation_input_tokens"],
    }


def _chunk(data: dict[str, Any]) -> dict[str, str]:
    return {"bytes": base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()}


def _invoke_events(exchange: Exchange, plan: MessagePlan) -> list[StreamEvent]:
    """One ``chunk`` per Anthropic event; ``message_stop`` carries Bedrock's invocation metrics."""
    events = []
    for tag, data in message_events(plan):
        if data["type"] == "message_stop":
            data = {**data, "amazon-bedrock-invocationMetrics": _metrics(exchange, plan)}
        events.append((tag, "chunk", _chunk(data)))
    return events


def _invoke_headers(exchange: Exchange, plan: MessagePlan) -> dict[str, str]:
    metrics = _metrics(exchange, plan)
    return {
        **request_id(),
        "x-amzn-bedrock-invocation-latency": str(metrics["invocationLatency"]),
        "x-amzn-bedrock-input-token-count": str(metrics["inputTokenCount"]),
        "x-amzn-bedrock-output-token-count": str(metrics["outputTokenCount"]),
        "x-amzn-bedrock-cache-read-input-token-count": str(metrics["cacheReadInputTokenCount"]),
        "x-amzn-bedrock-cache-write-input-token-count": str(metrics["cacheWriteInputTokenCount"]),
    }


@logged
async def invoke_model(request: Request) -> Response:
    """``POST /model/{modelId}/invoke`` and ``/invoke-with-response-stream``."""
    exchange = await bedrock_begin(request)
    if isinstance(exchange, Response):
        return exchange
    model_id, stream = request.path_params["model_id"], exchange.record.stream
    problem = _invoke_problem(model_id, exchange.body)
    if problem:
        return BEDROCK.error(400, problem)
    # The planner reads the model from the body, where Bedrock has it in the URL.
    exchange.body = {**exchange.body, "model": model_id}
    plan = bedrock_plan(exchange, model_id, "toolu_bdrk_")
    if isinstance(plan, Response):
        return plan
    if exchange.fault_kind() == "malformed":
        broken = malformed_message(plan)
        if stream:
            return malformed_stream("chunk", json.dumps({"bytes": base64.b64encode(broken.encode()).decode()}))
        return Response(broken, media_type="application/json")
    if stream:
        return stream_events(exchange, _invoke_events(exchange, plan), streamed_usage(plan), content_type=True)
    ended = await await_reply(exchange, plan.output_tokens, plan.usage())
    return ended or JSONResponse(plan.message(), headers=_invoke_headers(exchange, plan))
