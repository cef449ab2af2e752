"""Domain exceptions. Each carries its HTTP status, error type and code; ``envelope()`` is the one
place they become the error body a client reads."""

from __future__ import annotations

from typing import Any


class MeterwayError(Exception):
    """Base of every error that reaches a client; rendered as ``{"error": {message, type, code}}``."""

    status = 500
    type = "api_error"
    code: str | None = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}


class InvalidRequest(MeterwayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class PayloadTooLarge(MeterwayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class AuthenticationFailed(MeterwayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(MeterwayError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(MeterwayError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class QuotaExceeded(MeterwayError):
    status = 402
    type = "insufficient_quota"
    code = "insufficient_quota"


class RateLimited(MeterwayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(MeterwayError):
    """The upstream answered with an error or broke off; ``upstream_status`` is what it sent.

    ``unreachable``: no connection was made, so nothing was sent; ``gateway_fault``: the provider
    refused the gateway's own credentials or configuration. Either way another route may serve.
    """

    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        code: str | None = None,
        unreachable: bool = False,
        gateway_fault: bool = False,
    ):
        super().__init__(message, code=code)
        self.upstream_status = upstream_status
        self.unreachable = unreachable
        self.gateway_fault = gateway_fault
        # The provider's own words about the client's request, for clients that act on them.
        self.upstream_message: str | None = None


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class TimeLimitReached(UpstreamTimeout):
    """The function's time is nearly up: the request is ended while its record can still be settled."""

    code = "time_limit_reached"


class StorageError(MeterwayError):
    """DynamoDB or S3 failed after retries."""

    status = 503
    type = "api_error"
    code = "storage_unavailable"


class Conflict(MeterwayError):
    """The request clashes with what is stored: a duplicate, or a concurrent change."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class MethodNotAllowed(MeterwayError):
    """The path exists, not with this method; ``Allow`` names the ones it has."""

    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class UnsupportedMediaType(MeterwayError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"
