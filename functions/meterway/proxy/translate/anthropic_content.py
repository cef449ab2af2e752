"""Content parts of the OpenAI formats as Anthropic content blocks: what Chat messages and
Responses items share (a string or a list of parts, images by URL or data URL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meterway.core.errors import InvalidRequest

JsonDict = dict[str, Any]

_IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def content_blocks(content: Any, where: str, block_of: Callable[[Any, str], JsonDict | None]) -> list[JsonDict]:
    """``content`` (absent, a string, or a list of parts, each read by ``block_of``) as blocks;
    empty text makes no block."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or a list of content parts")
    blocks = [block_of(part, f"{where}[{i}]") for i, part in enumerate(content)]
    return [block for block in blocks if block is not None]


def image_block(url: str, where: str, field: str) -> JsonDict:
    """An image block from an http(s) URL or a base64 data URL given as ``field``."""
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = data_url(url, where, field)
    if media_type not in _IMAGE_MEDIA_TYPES:
        raise InvalidRequest(f"{where}: image type {media_type!r} is not supported (use jpeg, png, gif or webp)")
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def data_url(url: str, where: str, field: str) -> tuple[str, str]:
    """The media type and base64 data of a ``data:<mime>;base64,<data>`` URL."""
    header, _, data = url.partition(",")
    media_type, _, encoding = header.removeprefix("data:").partition(";")
    if not url.startswith("data:") or encoding != "base64" or not data:
        raise InvalidRequest(f"{where}.{field} must be an http(s) URL or a data:<mime>;base64,<data> URL")
    return media_type, data
