"""The proxy's stack doing nothing but relay: the floor under the proxy's CPU per request.

The same server and libraries the proxy runs on, as `run.sh` starts it (uvicorn with httptools,
Starlette, one httpx client on the proxy's own transport, `meterway.proxy.dal.asyncio_network`),
passing each request's body to the fake upstream as it came and the answer's bytes back as they
arrive: no key, no parsing, no translation, no pricing, no DynamoDB. `bench/proxy_overhead.py
--stack-alone` runs it beside the proxy, so the CPU it reports is what any gateway built on these
parts pays before doing its own work.

    UPSTREAM=http://127.0.0.1:PORT python -m uvicorn --http httptools bench.stack_alone:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from meterway.proxy.dal.asyncio_network import AsyncioTransport

UPSTREAM = os.environ.get("UPSTREAM", "http://127.0.0.1:8001")
PASSED_HEADERS = ("authorization", "x-api-key", "anthropic-version", "content-type")
client = httpx.AsyncClient(transport=AsyncioTransport(limits=httpx.Limits(max_keepalive_connections=20)))


async def relay(request: Request) -> Response:
    headers = {name: request.headers[name] for name in PASSED_HEADERS if name in request.headers}
    outbound = client.build_request("POST", UPSTREAM + request.url.path, content=await request.body(), headers=headers)
    upstream = await client.send(outbound, stream=True)
    media_type = upstream.headers.get("content-type")
    if not (media_type or "").startswith("text/event-stream"):
        return Response(await upstream.aread(), status_code=upstream.status_code, media_type=media_type)

    async def events() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()

    return StreamingResponse(events(), status_code=upstream.status_code, media_type=media_type)


async def healthz(request: Request) -> Response:
    return Response("ok")


PATHS = ("/v1/chat/completions", "/v1/messages", "/v1/responses")
app = Starlette(routes=[*(Route(path, relay, methods=["POST"]) for path in PATHS), Route("/healthz", healthz)])
