"""The upstream's server-sent events, read as they arrive (``meterway.proxy.providers.sse``): the
same events however the bytes are cut into chunks, with the format's line endings, comments and
multi-line data; no event for a block without data or one the stream ends in; a refusal of a body
that is not an event stream or an event that never ends."""

from __future__ import annotations

import anyio
import httpx
import pytest

from meterway.core.errors import UpstreamError
from meterway.proxy.providers import sse
from meterway.proxy.providers.sse import Event, server_sent_events

# An Anthropic-shaped stream with what the format allows around it: a comment, CRLF and CR line
# endings, a field with no space after its colon, a two-line data field, an id and a retry.
STREAM = (
    b": keep-alive\r\n\r\n"
    b'event: message_start\r\ndata: {"type":"message_start"}\r\n\r\n'
    b"id: 7\nretry: 1000\nevent:ping\ndata:{}\n\n"
    b'event: content_block_delta\rdata: {"text":\rdata: "caf\xc3\xa9"}\r\r'
    b'data: {"choices":[]}\n\n'
    b"data: [DONE]\n\n"
)
EXPECTED = [
    Event("message_start", '{"type":"message_start"}'),
    Event("ping", "{}"),
    Event("content_block_delta", '{"text":\n"café"}'),
    Event("", '{"choices":[]}'),
    Event("", "[DONE]"),
]


def read(
    chunks: list[bytes], content_type: str = "text/event-stream; charset=utf-8", into: list[Event] | None = None
) -> list[Event]:
    """The events of a body that arrives in ``chunks``, appended to ``into`` as each comes."""
    events = [] if into is None else into

    class Chunks(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[override]
            for chunk in chunks:
                yield chunk

    async def collect() -> list[Event]:
        response = httpx.Response(200, headers={"content-type": content_type}, stream=Chunks())
        async for event in server_sent_events(response):
            events.append(event)
        return events

    return anyio.run(collect)


def test_the_events_of_one_chunk():
    assert read([STREAM]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_the_same_events_wherever_the_bytes_are_cut(cut):
    # A cut between CR and LF, inside a UTF-8 character, a field name or the blank line.
    assert read([STREAM[:cut], STREAM[cut:]]) == EXPECTED


def test_the_same_events_a_byte_at_a_time():
    assert read([bytes([byte]) for byte in STREAM]) == EXPECTED


def test_a_byte_order_mark_at_the_start_is_not_part_of_the_first_field():
    assert read([b"\xef\xbb", b"\xbfevent: a\ndata: 1\n\n"]) == [Event("a", "1")]


def test_a_block_without_data_and_a_block_the_stream_ends_in_are_not_events():
    chunks = [b"event: empty\n\n", b"data: kept\n\n", b"event: cut\ndata: never ended"]

    assert read(chunks) == [Event("", "kept")]


def test_a_body_that_is_not_an_event_stream_is_the_upstreams_error():
    with pytest.raises(UpstreamError, match="not a stream of server-sent events"):
        read([b'{"error": {"message": "no"}}'], content_type="application/json")


def test_an_event_that_never_ends_is_cut_at_the_bound(monkeypatch):
    monkeypatch.setattr(sse, "MAX_EVENT_BYTES", 1024)
    delivered: list[Event] = []

    with pytest.raises(UpstreamError, match="larger than the gateway reads"):
        read([b"data: first\n\n"] + [b"data: " + b"x" * 500 + b"\n"] * 3, into=delivered)
    # What came whole before it was delivered; the relay ends the client's stream with the error.
    assert delivered == [Event("", "first")]
