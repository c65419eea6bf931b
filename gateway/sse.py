"""Usage from a Messages SSE stream, read incrementally while the chunks are relayed.

The gateway hands every chunk to :meth:`StreamUsage.feed` right after sending it on, so parsing
never delays the client. Only three events matter and only they are decoded: ``message_start``
(input and cache usage, model, service tier), ``message_delta`` (cumulative ``output_tokens``; the
last one wins) and ``error`` (a failure after the stream started). Text deltas are skipped by a
prefix check, without JSON decoding.
"""

from __future__ import annotations

import logging
import re

import orjson

logger = logging.getLogger(__name__)

# What a model id looks like (claude-sonnet-4-5-20250929, anthropic.claude-v2:1): nothing that
# could change a URL path or break a stored row.
MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_ERROR_TYPE = re.compile(r"[a-z_]{1,64}")
_TIER = re.compile(r"[A-Za-z0-9_-]{1,32}")
MAX_TOKEN_COUNT = 10**12  # beyond any request: a count above it is the upstream's mistake

_START = b"event: message_start"
_DELTA = b"event: message_delta"
_ERROR = b"event: error"
_WANTED = (_START, _DELTA, _ERROR)


USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


def take_usage(usage: dict, into: dict[str, int]) -> str | None:
    """Copy Anthropic's token counts from a `usage` object into `into`; return its service tier.
    Shared by JSON answers and stream events (whose later counts replace earlier ones)."""
    for name in USAGE_FIELDS:
        value = usage.get(name)
        if _count(value):
            into[name] = value
    creation = usage.get("cache_creation")  # {"ephemeral_5m_input_tokens", "ephemeral_1h_..."}
    if isinstance(creation, dict):
        value = creation.get("ephemeral_1h_input_tokens")
        if _count(value):
            into["cache_creation_1h_input_tokens"] = value
    tier = usage.get("service_tier")
    return tier if isinstance(tier, str) and _TIER.fullmatch(tier) else None


def _count(value) -> bool:
    return type(value) is int and 0 <= value <= MAX_TOKEN_COUNT


def model_of(value) -> str | None:
    """`value` if it is a model id, else None (an upstream's answer is not trusted blindly)."""
    return value if isinstance(value, str) and MODEL_ID.fullmatch(value) else None


def error_type_of(error) -> str:
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) and _ERROR_TYPE.fullmatch(kind) else "api_error"


def _data(event: bytes) -> dict | None:
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            try:
                value = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


class StreamUsage:
    __slots__ = ("_buffer", "error_type", "model", "service_tier", "usage")

    def __init__(self) -> None:
        self._buffer = b""
        self.usage: dict[str, int] = {}
        self.model: str | None = None
        self.service_tier: str | None = None
        self.error_type: str | None = None

    def feed(self, chunk: bytes) -> None:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in chunk:
            buffer = buffer.replace(b"\r\n", b"\n")
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            if buffer.startswith(_WANTED, start):
                try:
                    self._event(buffer[start:end])
                except Exception:  # metering must never break the relay
                    logger.warning("Unreadable stream event: %r", buffer[start:end][:200])
            start = end + 2
        self._buffer = buffer[start:] if start < len(buffer) else b""

    def _event(self, event: bytes) -> None:
        data = _data(event)
        if data is None:
            return
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                self.model = model_of(message.get("model")) or self.model
                self._take(message.get("usage"))
        elif kind == "message_delta":
            self._take(data.get("usage"))
        elif kind == "error":
            self.error_type = error_type_of(data.get("error"))

    def _take(self, usage) -> None:
        if isinstance(usage, dict):
            self.service_tier = take_usage(usage, self.usage) or self.service_tier
