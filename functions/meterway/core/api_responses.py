"""What a management API route declares it answers, for its OpenAPI document: its success, and for
each error class it can raise the error envelope under that class's status.

Every route passes ``responses=api_responses(...)`` to its decorator, so the document is built
from the error classes themselves: a class's status and type are stated once, in ``errors``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, Field

from meterway.core.errors import (
    AuthenticationFailed,
    InvalidRequest,
    MeterwayError,
    PayloadTooLarge,
    PermissionDenied,
    StorageError,
    UnsupportedMediaType,
)


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="The error's class, e.g. invalid_request_error")
    code: str | None = Field(description="What went wrong, e.g. invalid_date or key_not_found")


class ErrorEnvelope(BaseModel):
    """The body of every error the API answers with."""

    error: ErrorDetail


# Every route checks the admin key (401, or 403 for an API key) and reads DynamoDB (503).
EVERY_ROUTE: tuple[type[MeterwayError], ...] = (AuthenticationFailed, PermissionDenied, StorageError)
# A route with a JSON body passes the body gate and the body's model: 400, 413, 415.
JSON_BODY: tuple[type[MeterwayError], ...] = (InvalidRequest, PayloadTooLarge, UnsupportedMediaType)


def api_responses(success: int = HTTPStatus.OK, *raises: type[MeterwayError]) -> dict[int, Any]:
    """The route's ``responses``: ``success`` (its body's schema read from the route's return
    annotation; none for 204), then the envelope for each status among ``raises`` and ``EVERY_ROUTE``."""
    answers: dict[int, Any] = {success: {"description": HTTPStatus(success).phrase}}
    if success == HTTPStatus.NO_CONTENT:
        answers[success]["content"] = {}
    types: dict[int, set[str]] = {}
    for error in (*raises, *EVERY_ROUTE):
        types.setdefault(error.status, set()).add(error.type)
    for status in sorted(types):
        answers[status] = {
            "description": f"{HTTPStatus(status).phrase}: the error envelope, type {' or '.join(sorted(types[status]))}",
            "content": {"application/json": {"model": ErrorEnvelope}},
        }
    return answers
