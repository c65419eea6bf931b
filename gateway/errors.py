"""Anthropic-shaped error responses: ``{"type":"error","error":{"type":…,"message":…}}``.

The statuses and types are Anthropic's (https://docs.anthropic.com/en/api/errors), so an SDK
raises the same exception class against the gateway as against the real API.
"""

from __future__ import annotations

import orjson

STATUS_OF = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
    "timeout_error": 504,
}


class GatewayError(Exception):
    """A refusal of ours, answered in Anthropic's shape. ``status`` defaults from the type."""

    def __init__(
        self,
        error_type: str,
        message: str,
        status: int | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status or STATUS_OF[error_type]
        self.headers = headers  # sent with the error (retry-after)


def rate_limited(message: str, retry_after: int) -> GatewayError:
    return GatewayError(
        "rate_limit_error", message, headers=((b"retry-after", b"%d" % retry_after),)
    )


def error_body(error_type: str, message: str, request_id: str) -> bytes:
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": request_id,
        }
    )


def sse_error_event(error_type: str, message: str) -> bytes:
    """The ``event: error`` Anthropic sends when a stream fails after it started."""
    payload = orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}})
    return b"event: error\ndata: " + payload + b"\n\n"
