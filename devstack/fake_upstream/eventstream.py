"""AWS's binary event-stream framing (``application/vnd.amazon.eventstream``), as Bedrock streams.

A message is a prelude (total length, headers length, CRC32 of those 8 bytes), the headers,
the payload and a CRC32 of everything before it; all integers are big-endian. The fake only
sends string headers (type 7): name length (1 byte), name, type, value length (2 bytes), value.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

MEDIA_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
# Bedrock pads every event with a "p" field of varying length, so that the sizes of the
# encrypted frames do not tell the tokens apart; clients must ignore it.
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return bytes([len(raw_name)]) + raw_name + bytes([_STRING]) + struct.pack(">H", len(raw_value)) + raw_value


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude, headers, payload and the two CRC32 checksums."""
    raw_headers = b"".join(_header(name, value) for name, value in headers.items())
    total = _PRELUDE.size + _CRC.size + len(raw_headers) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total, len(raw_headers))
    message = prelude + _CRC.pack(zlib.crc32(prelude)) + raw_headers + payload
    return message + _CRC.pack(zlib.crc32(message))


def padded(payload: dict[str, Any], seed: int) -> bytes:
    """``payload`` as compact JSON with Bedrock's padding field, 1 to 62 characters long."""
    return json.dumps({**payload, "p": _PADDING[: 1 + seed % len(_PADDING)]}, separators=(",", ":")).encode()


def event_frame(event_type: str, payload: bytes) -> bytes:
    """An event (``:message-type: event``) carrying ``payload`` as it is."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, payload)


def event_message(event_type: str, payload: dict[str, Any], seed: int = 0) -> bytes:
    """An event whose JSON payload is ``payload``, padded as Bedrock pads it."""
    return event_frame(event_type, padded(payload, seed))


def exception_message(exception_type: str, payload: dict[str, Any]) -> bytes:
    """An in-stream error (``:message-type: exception``), e.g. ``modelStreamErrorException``."""
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, json.dumps(payload, separators=(",", ":")).encode())
