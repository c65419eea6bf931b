"""Refusals of the Admin API in Anthropic's shape: `{"type":"error","error":{"type","message"}}`
with Anthropic's statuses (the gateway's table), so the SDK raises the same exception classes
against the console as against Anthropic's Admin API."""

from __future__ import annotations

import secrets

import orjson
from django.core.exceptions import ValidationError
from pydantic import ValidationError as SchemaError

STATUS_OF = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "request_too_large": 413,
    "api_error": 500,
}


class ApiError(Exception):
    def __init__(self, error_type: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status or STATUS_OF[error_type]


def invalid(field: str, message: str) -> ApiError:
    """Bad input, naming the field the way the client sent it."""
    return ApiError("invalid_request_error", f"{field}: {message}")


def not_found(what: str, value: str) -> ApiError:
    return ApiError("not_found_error", f"{what} {value} not found.")


def from_schema_error(error: SchemaError, *, where: str) -> ApiError:
    """The first problem pydantic found, as `field: message` (a list's item as `field[i]`)."""
    first = error.errors(include_url=False)[0]
    parts = [str(part) for part in first.get("loc", ())]
    field = parts[0] if parts else where
    for part in parts[1:]:
        field += f"[{part}]" if part.isdigit() else f".{part}"
    message = first.get("msg", "Invalid value.")
    if first.get("type") == "extra_forbidden":
        message = "This field is not accepted here."
    elif first.get("type") == "missing":
        message = "Field required."
    message = message.removeprefix("Value error, ")
    return invalid(field, message)


def from_validation_error(error: ValidationError) -> ApiError:
    """A service's refusal (the same words the browser shows), naming its field if it has one."""
    if hasattr(error, "error_dict"):
        field, errors = next(iter(error.error_dict.items()))
        messages = [message for item in errors for message in item.messages]
        text = " ".join(messages)
        return invalid(field, text) if field != "__all__" else invalid_plain(text)
    return invalid_plain(" ".join(error.messages))


def invalid_plain(message: str) -> ApiError:
    return ApiError("invalid_request_error", message)


def new_request_id() -> str:
    return "req_admin_" + secrets.token_hex(12)


def error_body(error: ApiError, request_id: str) -> bytes:
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": error.error_type, "message": error.message},
            "request_id": request_id,
        }
    )
