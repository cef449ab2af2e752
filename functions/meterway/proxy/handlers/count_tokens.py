"""``POST /v1/messages/count_tokens``: the tokens a Messages request would use, never billed.

Counted by the provider where it has a counting endpoint (Anthropic); otherwise estimated from
the request's length, and the answer says so (``estimated: true``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from meterway.accounts.logic.limits import check_model_allowed
from meterway.proxy.handlers.deps import ProxyDeps
from meterway.proxy.handlers.http_io import REQUEST_ID_HEADER, read_json
from meterway.proxy.logic.estimate import prompt_tokens_estimate


async def handle_count_tokens(request: Request) -> Response:
    deps: ProxyDeps = request.app.state.deps
    key, _ = await deps.authenticate(request)
    # The Messages format is imported on the first request that reads it (see inference.FrontDoor).
    from meterway.proxy.formats.base import parse_request, request_body
    from meterway.proxy.formats.messages import CountTokensRequest

    raw = await read_json(request, deps.settings.max_body_bytes)
    parsed = parse_request(CountTokensRequest, raw)
    route = deps.catalog.resolve(parsed.model)
    check_model_allowed(key, route.id)
    body = request_body(raw, parsed)
    provider = deps.providers.for_route(route)
    headers = {REQUEST_ID_HEADER: request.state.request_id}
    outbound = provider.count_tokens(route, body, request.headers)
    if outbound is None:
        return JSONResponse({"input_tokens": prompt_tokens_estimate(body), "estimated": True}, headers=headers)
    wait = deps.time_budget(request).first_byte()
    response = await deps.upstream.send(outbound, stream=False, on_error=provider.error, wait=wait)
    return JSONResponse(response.json(), headers=headers)
