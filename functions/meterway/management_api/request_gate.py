"""The one gate a management API request body passes before it is parsed: JSON only (415),
UTF-8 (400), at most ``MAX_BODY_BYTES`` (413) and ``MAX_JSON_DEPTH`` levels deep (400).

Powertools reads and validates the body before any middleware runs, so the gate is part of its
request validation: ``GatedRequestValidation`` checks, then lets Powertools parse.
"""

from __future__ import annotations

import binascii
from typing import Any

from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

from meterway.core.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from meterway.core.json_limits import MAX_JSON_DEPTH, depth_within

MAX_BODY_BYTES = 64 * 1024
JSON_MEDIA_TYPE = "application/json"


def check_body(event: BaseProxyEvent) -> None:
    """Refuse a body the API does not take, before anything parses it."""
    if not event.body:
        return
    media_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise UnsupportedMediaType(f"The body must be JSON, sent with 'Content-Type: {JSON_MEDIA_TYPE}'.")
    try:
        text = event.decoded_body or ""
    except (UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidRequest("The body is not UTF-8 text.", code="invalid_json") from exc
    if len(text.encode()) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body is over {MAX_BODY_BYTES // 1024} KiB.")
    if not depth_within(text, MAX_JSON_DEPTH):
        raise InvalidRequest(f"The body nests more than {MAX_JSON_DEPTH} levels deep.", code="invalid_json")


class GatedRequestValidation(OpenAPIRequestValidationMiddleware):
    def _get_body(self, app: Any) -> dict[str, Any]:
        check_body(app.current_event)
        return super()._get_body(app)
