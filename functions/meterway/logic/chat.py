"""Chat completions through any provider: the request sent upstream, the response returned, and
the one streaming core that every adapter (Lambda, the local stack, tests) runs.

A request is settled exactly once, whatever happens: completed, cut by the upstream, or abandoned
by the client. The settle callback writes the ledger record; it runs shielded from cancellation,
because a client that hangs up must still leave a record of the tokens the upstream spent.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from httpx_sse import EventSource, SSEError

from meterway.errors import MeterwayError, UpstreamError
from meterway.logic.anthropic_translate import (
    MessagesStreamTranslator,
    anthropic_token_usage,
    chat_to_messages,
    messages_to_chat,
    openai_usage,
)
from meterway.logic.catalog import ModelRoute
from meterway.logic.estimate import prompt_tokens_estimate, tokens_for_chars
from meterway.logic.openai_stream import OpenAIStreamAdapter
from meterway.logic.pricing import price_usage
from meterway.logic.record_usage import UsageRecord
from meterway.logic.usage import TokenUsage, from_openai

Settle = Callable[[UsageRecord], Awaitable[None]]
StreamAdapter = OpenAIStreamAdapter | MessagesStreamTranslator


@dataclass(slots=True)
class ChatCall:
    """One chat request on its way through the gateway."""

    route: ModelRoute
    body: dict[str, Any]
    record: UsageRecord
    started: float

    @property
    def created(self) -> int:
        return int(self.record.created_at.timestamp())

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)


def upstream_request(route: ModelRoute, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The provider path and body for a client's chat request."""
    if route.wire == "anthropic":
        return "/messages", chat_to_messages(body, route.upstream_model)
    upstream = dict(body)
    upstream["model"] = route.upstream_model
    if body.get("stream"):
        # The gateway always asks for the usage chunk itself: a stream without it cannot be metered.
        upstream["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return "/chat/completions", upstream


def settle_usage(call: ChatCall, usage: TokenUsage, *, estimated: bool = False) -> None:
    """Price the usage and put it on the record."""
    price = price_usage(call.route, usage)
    record = call.record
    record.usage = usage
    record.usage_estimated = estimated
    record.cost_usd = price.cost_usd
    record.prices = price.rates
    record.latency_ms = call.elapsed_ms()


def usage_block(call: ChatCall, upstream_usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The client's ``usage``: the provider's own block when OpenAI-shaped, plus ``cost`` in USD."""
    block = dict(upstream_usage) if upstream_usage else openai_usage(call.record.usage)
    block["cost"] = float(call.record.cost_usd)
    if call.record.usage_estimated:
        block["estimated"] = True
    return block


def complete_response(call: ChatCall, payload: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed upstream answer → the client's ``chat.completion``, settled and priced."""
    record = call.record
    if call.route.wire == "anthropic":
        response = messages_to_chat(payload, model=call.route.id, request_id=record.request_id, created=call.created)
        settle_usage(call, anthropic_token_usage(payload.get("usage") or {}))
        upstream_usage = None
    else:
        response = dict(payload)
        response |= {"id": record.request_id, "model": call.route.id}
        upstream_usage = payload.get("usage")
        if isinstance(upstream_usage, dict):
            settle_usage(call, from_openai(upstream_usage))
        else:
            settle_usage(call, _estimate(call, _message_chars(payload)), estimated=True)
    choices = response.get("choices") or [{}]
    record.finish_reason = choices[0].get("finish_reason")
    record.ttft_ms = record.latency_ms
    response["usage"] = usage_block(call, upstream_usage)
    return response


def _message_chars(payload: dict[str, Any]) -> int:
    total = 0
    for choice in payload.get("choices") or []:
        content = (choice.get("message") or {}).get("content")
        total += len(content) if isinstance(content, str) else 0
    return total


def _estimate(call: ChatCall, output_chars: int, known: TokenUsage | None = None) -> TokenUsage:
    """Best-known usage of a request whose upstream never reported a final count."""
    base = (
        known
        if known is not None and known.total_tokens
        else TokenUsage(input_tokens=prompt_tokens_estimate(call.body))
    )
    return base.with_output(max(base.output_tokens, tokens_for_chars(output_chars)))


def sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def new_adapter(call: ChatCall) -> StreamAdapter:
    model, request_id, created = call.route.id, call.record.request_id, call.created
    if call.route.wire == "anthropic":
        return MessagesStreamTranslator(model=model, request_id=request_id, created=created)
    return OpenAIStreamAdapter(model=model, request_id=request_id, created=created)


async def stream_chat(call: ChatCall, response: httpx.Response, settle: Settle) -> AsyncGenerator[bytes, None]:
    """Relay an upstream event stream as OpenAI chunks, end it with a usage chunk, settle once.

    Each upstream event is forwarded as soon as it arrives: nothing is buffered. If the upstream
    breaks off, the client gets an error event; if the client goes away, the generator is closed.
    Either way the record is settled as ``partial`` with the upstream's counts where it sent them,
    else an estimate flagged as such.
    """
    adapter = new_adapter(call)
    record = call.record
    complete = False
    try:
        async for event in EventSource(response).aiter_sse():
            if record.ttft_ms is None:
                record.ttft_ms = call.elapsed_ms()
            if event.data == "[DONE]":
                if isinstance(adapter, OpenAIStreamAdapter):
                    adapter.end_of_stream()
                break
            for chunk in adapter.feed(event.event, json.loads(event.data)):
                yield sse(chunk)
        if not adapter.finished:
            raise UpstreamError("The upstream provider ended the stream before it finished.")
        complete = True
        _settle_stream(call, adapter, complete=True)
        yield sse(_usage_chunk(call, adapter))
        yield sse("[DONE]")
    except (UpstreamError, httpx.HTTPError, SSEError, ValueError) as exc:
        error = exc if isinstance(exc, MeterwayError) else UpstreamError("The upstream stream broke off.")
        record.error_code = error.code
        _settle_stream(call, adapter, complete=False)
        yield sse(error.envelope())
    finally:
        if not complete and record.status != "partial":
            # Closed from outside: the client went away or the task was cancelled mid-stream.
            record.error_code = "client_disconnected"
            _settle_stream(call, adapter, complete=False)
        with anyio.CancelScope(shield=True):
            await response.aclose()
            await settle(record)


def _settle_stream(call: ChatCall, adapter: StreamAdapter, *, complete: bool) -> None:
    if adapter.usage_reported:
        settle_usage(call, adapter.usage)
    else:
        settle_usage(call, _estimate(call, adapter.output_chars, adapter.usage), estimated=True)
    call.record.status = "ok" if complete else "partial"
    call.record.finish_reason = adapter.finish_reason


def _usage_chunk(call: ChatCall, adapter: StreamAdapter) -> dict[str, Any]:
    upstream = adapter.raw_usage if isinstance(adapter, OpenAIStreamAdapter) else None
    return {
        "id": call.record.request_id,
        "object": "chat.completion.chunk",
        "created": call.created,
        "model": call.route.id,
        "choices": [],
        "usage": usage_block(call, upstream),
    }
