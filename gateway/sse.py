"""Usage from a Messages SSE stream, read incrementally while the chunks are relayed.

The gateway hands every chunk to :meth:`StreamUsage.feed` right after sending it on, so parsing
never delays the client. Decoded: ``message_start`` (input and cache usage, model, service tier),
``message_delta`` (cumulative ``output_tokens``; the last one wins), ``error`` (a failure after the
stream started), and the content events (``content_block_start``, ``content_block_delta``), whose
relayed bytes are counted for a stream that ends without its final usage.

A stream cut short (its client left, or the upstream dropped it) has no final ``message_delta``:
:meth:`StreamUsage.settled_usage` then meters one output token per relayed content byte, plus one
per block, capped by ``max_tokens`` (``max_tokens`` itself once thinking was relayed: summarized
thinking relays fewer tokens than are billed). Byte-level BPE never makes a token of less than
one byte, so this never counts less than was relayed; measured in docs/decisions/0008.
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
_BLOCK_START = b"event: content_block_start"
_BLOCK_DELTA = b"event: content_block_delta"
_WANTED = (_START, _DELTA, _ERROR, _BLOCK_START)
_DATA = b"\ndata:"
# The smallest a content delta's JSON can be around its content: the payload's length beyond it
# bounds the content's UTF-8 bytes from above (JSON escapes never take fewer bytes than what they
# encode; other delta types and any whitespace only add), without decoding each delta.
_DELTA_FRAMING = len(
    b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}'
)
# A quoted type name cannot occur inside a JSON string (its quotes would be escaped).
_THINKING_DELTAS = (b'"thinking_delta"', b'"signature_delta"')
_THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})


USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)

# Server tools as `usage.server_tool_use` reports them (code execution where it is reported).
SERVER_TOOL_FIELDS = ("web_search_requests", "web_fetch_requests", "code_execution_seconds")


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
    tools = usage.get("server_tool_use")  # {"web_search_requests": n, "web_fetch_requests": n}
    if isinstance(tools, dict):
        for name in SERVER_TOOL_FIELDS:
            value = tools.get(name)
            if _count(value):
                into[name] = value
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
    __slots__ = (
        "_buffer",
        "blocks",
        "error_type",
        "finished",
        "model",
        "relayed_bytes",
        "service_tier",
        "thinking",
        "usage",
    )

    def __init__(self) -> None:
        self._buffer = b""
        self.usage: dict[str, int] = {}
        self.model: str | None = None
        self.service_tier: str | None = None
        self.error_type: str | None = None
        self.finished = False  # a message_delta carried the final usage
        self.relayed_bytes = 0  # UTF-8 bytes of generated content relayed (text, JSON, names)
        self.blocks = 0
        self.thinking = False

    def settled_usage(self, max_tokens: int) -> dict[str, int]:
        """The usage to meter: the upstream's own once its final count arrived, else input and
        cache usage as reported with output estimated from what was relayed."""
        if self.finished:
            return self.usage
        usage = dict(self.usage)
        if self.thinking:
            estimate = max_tokens
        else:
            estimate = min(max_tokens, self.relayed_bytes + self.blocks)
        usage["output_tokens"] = max(usage.get("output_tokens", 0), estimate)
        return usage

    def feed(self, chunk: bytes) -> None:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in chunk:
            buffer = buffer.replace(b"\r\n", b"\n")
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            if buffer.startswith(_BLOCK_DELTA, start):
                self._count_delta(buffer[start:end])
            elif buffer.startswith(_WANTED, start):
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
        if kind == "content_block_start":
            self._count_block(data.get("content_block"))
        elif kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                self.model = model_of(message.get("model")) or self.model
                self._take(message.get("usage"))
        elif kind == "message_delta":
            usage = data.get("usage")
            self._take(usage)
            self.finished = self.finished or isinstance(usage, dict)
        elif kind == "error":
            self.error_type = error_type_of(data.get("error"))

    def _take(self, usage) -> None:
        if isinstance(usage, dict):
            self.service_tier = take_usage(usage, self.usage) or self.service_tier

    def _count_delta(self, event: bytes) -> None:
        """Count a relayed content delta (text, tool input JSON, thinking, citations)."""
        data = event.find(_DATA)
        if data < 0:
            return
        self.relayed_bytes += max(0, len(event) - data - len(_DATA) - _DELTA_FRAMING)
        if not self.thinking and (_THINKING_DELTAS[0] in event or _THINKING_DELTAS[1] in event):
            self.thinking = True

    def _count_block(self, block) -> None:
        self.blocks += 1
        if not isinstance(block, dict):
            return
        kind = block.get("type")
        if kind in _THINKING_BLOCKS:
            self.thinking = True
        elif kind in ("tool_use", "server_tool_use"):
            name = block.get("name")
            if isinstance(name, str):
                self.relayed_bytes += len(name.encode())
            if block.get("input"):
                self.relayed_bytes += len(orjson.dumps(block["input"]))
        elif kind == "text" and isinstance(block.get("text"), str):
            self.relayed_bytes += len(block["text"].encode())
