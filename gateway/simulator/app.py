"""A pure-ASGI stand-in for api.anthropic.com (Messages API wire format).

Endpoints
    ``POST /v1/messages`` (JSON, or SSE with ``"stream": true``),
    ``POST /v1/messages/count_tokens``, ``GET /v1/models``, ``GET /v1/models/{id}`` (aliases
    resolve), the Admin API's usage report and key and workspace lists (Admin keys only; see
    :mod:`gateway.simulator.admin_report`), and ``GET /healthz`` (no auth, for readiness
    probes). Anything else is a 404
    ``not_found_error``.

Auth
    Any non-empty ``x-api-key`` or ``Authorization: Bearer <token>``; otherwise 401
    ``authentication_error``. ``anthropic-version`` is accepted but not required.

Usage numbers
    Deterministic; the formulas are in :mod:`gateway.simulator.tokens`.

Injected behaviour
    Per request, the ``x-sim-behavior`` header, or, when that header is absent, a ``[sim:...]``
    marker in the text of the last user message (e.g. ``"hello [sim:overloaded]"``). The value is a
    comma-separated list of:

    ==================  =====================================================================
    ``rate_limit``      429 ``rate_limit_error``, ``retry-after: 7``, rate-limit headers at 0
    ``overloaded``      529 ``overloaded_error``
    ``server_error``    500 ``api_error``
    ``stream_error``    streaming only: after 2 text deltas, ``event: error`` carrying an
                        ``overloaded_error``, then the response ends cleanly
    ``drop``            the connection is closed mid-response: half of the JSON body, or the
                        stream up to the first text delta
    ``slow:<ms>``       wait that long before answering (on top of the process-wide latency)
    ``drip:<ms>``       streaming only: wait that long between SSE events
    ``prompt:<tokens>`` the prompt counts as that many input tokens (1..10^9), as a long
                        conversation or a large document would, without sending one: a test
                        reaches a spending threshold in a few requests (``count_tokens`` too;
                        a cached prefix stays cached within it)
    ==================  =====================================================================

    An unknown value is a 400 ``invalid_request_error`` so a typo cannot pass silently. Error
    behaviours apply after request validation, so an invalid request is still a 400.

Server tools
    A request that declares web search (``web_search_*``) or web fetch (``web_fetch_*``) tools
    gets ``usage.server_tool_use`` (``web_search_requests``, ``web_fetch_requests``): each such
    tool used ``max_uses`` times (1 without it), in JSON answers and in the stream's
    ``message_start`` and final ``message_delta``. No tool result blocks are produced.

Process-wide latency
    ``SIM_LATENCY_MS`` (read by :meth:`Simulator.from_env`, default 0) is slept before answering
    every authenticated, valid API request.

Performance notes: no framework, header lists built from pre-encoded bytes, the SSE text deltas for
a given output are built once and cached, and hashing for prompt caching is only done for requests
that carry ``cache_control``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote

from . import admin_report, catalog
from ._json import JSONDecodeError, dumps, loads
from .tokens import PromptCacheLedger, last_user_text, measure_input, plan_output, words

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

MAX_BODY_BYTES = 32 * 1024 * 1024  # Anthropic's documented Messages API request size limit
RETRY_AFTER_SECONDS = 7
WORDS_PER_DELTA = 4
STREAM_ERROR_AFTER_DELTAS = 2

REQUESTS_LIMIT = 4_000
INPUT_TOKENS_LIMIT = 2_000_000
OUTPUT_TOKENS_LIMIT = 400_000
TOKENS_LIMIT = INPUT_TOKENS_LIMIT + OUTPUT_TOKENS_LIMIT

# --------------------------------------------------------------------------- behaviours


@dataclass(frozen=True, slots=True)
class Behavior:
    error: str | None = None
    stream_error: bool = False
    drop: bool = False
    slow_ms: int = 0
    drip_ms: int = 0
    prompt_tokens: int = 0  # 0: counted from the request


NORMAL = Behavior()

# behaviour name -> (status, Anthropic error type, message)
INJECTED_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (
        429,
        "rate_limit_error",
        "Number of requests has exceeded your per-minute rate limit (simulated).",
    ),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
}
MAX_DELAY_MS = 600_000
MAX_PROMPT_TOKENS = 10**9


@lru_cache(maxsize=512)
def parse_behavior(spec: str) -> Behavior:
    """Parse an ``x-sim-behavior`` value; raise ValueError on anything unknown."""
    error: str | None = None
    flags = {"stream_error": False, "drop": False}
    delays = {"slow": 0, "drip": 0}
    prompt_tokens = 0
    for raw_item in spec.split(","):
        item = raw_item.strip().lower()
        if not item or item == "none":
            continue
        name, _, arg = item.partition(":")
        if name in INJECTED_ERRORS and not arg:
            error = name
        elif name in flags and not arg:
            flags[name] = True
        elif name in delays:
            try:
                ms = int(arg)
            except ValueError:
                raise ValueError(
                    f"x-sim-behavior: {name} needs milliseconds, got {arg!r}"
                ) from None
            if not 0 <= ms <= MAX_DELAY_MS:
                raise ValueError(f"x-sim-behavior: {name} must be 0..{MAX_DELAY_MS} ms")
            delays[name] = ms
        elif name == "prompt":
            try:
                prompt_tokens = int(arg)
            except ValueError:
                raise ValueError(f"x-sim-behavior: prompt needs tokens, got {arg!r}") from None
            if not 1 <= prompt_tokens <= MAX_PROMPT_TOKENS:
                raise ValueError(f"x-sim-behavior: prompt must be 1..{MAX_PROMPT_TOKENS} tokens")
        else:
            raise ValueError(f"x-sim-behavior: unknown value {raw_item.strip()!r}")
    if error is None and not any(flags.values()) and not any(delays.values()) and not prompt_tokens:
        return NORMAL
    return Behavior(
        error, flags["stream_error"], flags["drop"], delays["slow"], delays["drip"], prompt_tokens
    )


MAX_SERVER_TOOL_USES = 10


def server_tool_use(tools: Any) -> dict[str, int] | None:
    """`usage.server_tool_use` for the server tools a request declares: each web search tool
    (`web_search_*`) is used `max_uses` times (1 without it, at most 10), each web fetch tool
    likewise; None when the request declares neither (the field is then left out)."""
    if not isinstance(tools, list):
        return None
    counts = {"web_search_requests": 0, "web_fetch_requests": 0}
    declared = False
    for tool in tools:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind, str):
            continue
        name = (
            "web_search_requests" if kind.startswith("web_search_")
            else "web_fetch_requests" if kind.startswith("web_fetch_") else None
        )  # fmt: skip
        if name is None:
            continue
        declared = True
        uses = tool.get("max_uses")
        uses = uses if type(uses) is int and uses >= 1 else 1
        counts[name] += min(uses, MAX_SERVER_TOOL_USES)
    return counts if declared else None


def magic_behavior(text: str) -> str | None:
    """The spec inside the first ``[sim:...]`` marker of ``text``, if any."""
    start = text.find("[sim:")
    if start < 0:
        return None
    end = text.find("]", start)
    return text[start + 5 : end] if end > 0 else None


# --------------------------------------------------------------------------- wire helpers


def sse(event: bytes, payload: Any) -> bytes:
    return b"event: " + event + b"\ndata: " + dumps(payload) + b"\n\n"


BLOCK_START = sse(
    b"content_block_start",
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
)
PING = sse(b"ping", {"type": "ping"})
BLOCK_STOP = sse(b"content_block_stop", {"type": "content_block_stop", "index": 0})
MESSAGE_STOP = sse(b"message_stop", {"type": "message_stop"})
STREAM_ERROR = sse(
    b"error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
)

JSON_TYPE = (b"content-type", b"application/json")
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


@lru_cache(maxsize=4096)
def output_text(start: int, count: int) -> str:
    return " ".join(words(start, count))


@lru_cache(maxsize=4096)
def delta_events(start: int, count: int) -> tuple[bytes, ...]:
    """Pre-encoded ``content_block_delta`` events whose texts concatenate to output_text()."""
    chunks = words(start, count)
    events = []
    for i in range(0, count, WORDS_PER_DELTA):
        text = " ".join(chunks[i : i + WORDS_PER_DELTA])
        if i:
            text = " " + text
        events.append(
            sse(
                b"content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
            )
        )
    return tuple(events)


class _ResetClock:
    """RFC 3339 reset timestamps, formatted at most once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._stamp = b""

    def stamp(self, ahead: int = 1) -> bytes:
        now = int(time.time())
        if ahead != 1:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + ahead)).encode()
        if now != self._second:
            self._second = now
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 1)).encode()
        return self._stamp


_clock = _ResetClock()


def rate_limit_headers(input_used: int, output_used: int, exhausted: bool = False) -> Headers:
    if exhausted:
        reset = _clock.stamp(RETRY_AFTER_SECONDS)
        requests_left = input_left = output_left = 0
    else:
        reset = _clock.stamp()
        requests_left = REQUESTS_LIMIT - 1
        input_left = INPUT_TOKENS_LIMIT - input_used
        output_left = OUTPUT_TOKENS_LIMIT - output_used
    return [
        (b"anthropic-ratelimit-requests-limit", b"%d" % REQUESTS_LIMIT),
        (b"anthropic-ratelimit-requests-remaining", b"%d" % requests_left),
        (b"anthropic-ratelimit-requests-reset", reset),
        (b"anthropic-ratelimit-tokens-limit", b"%d" % TOKENS_LIMIT),
        (b"anthropic-ratelimit-tokens-remaining", b"%d" % (input_left + output_left)),
        (b"anthropic-ratelimit-tokens-reset", reset),
        (b"anthropic-ratelimit-input-tokens-limit", b"%d" % INPUT_TOKENS_LIMIT),
        (b"anthropic-ratelimit-input-tokens-remaining", b"%d" % input_left),
        (b"anthropic-ratelimit-input-tokens-reset", reset),
        (b"anthropic-ratelimit-output-tokens-limit", b"%d" % OUTPUT_TOKENS_LIMIT),
        (b"anthropic-ratelimit-output-tokens-remaining", b"%d" % output_left),
        (b"anthropic-ratelimit-output-tokens-reset", reset),
    ]


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    rid: bytes,
    extra: Sequence[tuple[bytes, bytes]] = (),
    drop: bool = False,
) -> None:
    headers = [JSON_TYPE, (b"content-length", b"%d" % len(body)), (b"request-id", rid), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if drop:
        # Promise the whole body, deliver half, then return without finishing: the server has to
        # close the connection, which the client sees as a truncated response.
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        return
    await send({"type": "http.response.body", "body": body})


async def send_error(
    send: Send,
    status: int,
    error_type: str,
    message: str,
    rid: bytes,
    extra: Sequence[tuple[bytes, bytes]] = (),
    drop: bool = False,
) -> None:
    body = dumps(
        {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": rid.decode(),
        }
    )
    await send_json(send, status, body, rid, extra, drop)


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client went away first."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):  # the usual case: the whole body in one message
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge  # stop buffering: the answer is a 413 whatever follows
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def validate(body: Any, *, needs_max_tokens: bool) -> str | None:
    """Anthropic-style validation; returns the error message or None."""
    if not isinstance(body, dict):
        return "Input should be a valid dictionary or object to extract fields from"
    model = body.get("model")
    if model is None:
        return "model: Field required"
    if not isinstance(model, str) or not model:
        return "model: Input should be a valid string"
    messages = body.get("messages")
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages.{i}: Input should be a valid dictionary"
        if message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        if content is None:
            return f"messages.{i}.content: Field required"
        if not isinstance(content, str | list):
            return f"messages.{i}.content: Input should be a valid list"
        if isinstance(content, list) and any(not isinstance(b, dict) for b in content):
            return f"messages.{i}.content: Input should be a valid list of content blocks"
    if needs_max_tokens:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            return "max_tokens: Field required"
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            return "max_tokens: Input should be a valid integer"
        if max_tokens < 1:
            return "max_tokens: Input should be greater than or equal to 1"
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        return "system: Input should be a valid string or list of text blocks"
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        return "tools: Input should be a valid list"
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return "stream: Input should be a valid boolean"
    return None


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


_DEFAULT_MODEL_LIST = dumps(catalog.list_page())
_HEALTH = dumps({"status": "ok"})


# --------------------------------------------------------------------------- the app


class Simulator:
    """The ASGI application. One instance per process; holds the prompt-cache ledger."""

    def __init__(self, latency_ms: float = 0.0) -> None:
        self.latency = max(0.0, latency_ms) / 1000
        self.cache = PromptCacheLedger()
        self._counter = itertools.count(1)
        # Random per process so ids stay unique across uvicorn workers and restarts.
        self._tag = os.urandom(4).hex()

    @classmethod
    def from_env(cls) -> Simulator:
        return cls(latency_ms=float(os.environ.get("SIM_LATENCY_MS") or 0))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "lifespan":
            await lifespan(receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        serial = f"{self._tag}{next(self._counter):012x}"
        rid = b"req_sim_" + serial.encode()

        if method == "POST" and path == "/v1/messages":
            route = "messages"
        elif method == "POST" and path == "/v1/messages/count_tokens":
            route = "count_tokens"
        elif method == "GET" and path == "/v1/models":
            route = "models"
        elif method == "GET" and path.startswith("/v1/models/"):
            route = "model"
        elif method == "GET" and path in admin_report.ROUTES:
            route = "admin"
        elif method == "GET" and path == "/healthz":
            await send_json(send, 200, _HEALTH, rid)
            return
        else:
            await send_error(send, 404, "not_found_error", "Not found", rid)
            return

        authenticated = False
        behavior_header: str | None = None
        api_key = b""
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                api_key = value.strip()
                authenticated = authenticated or bool(value.strip())
            elif name == b"authorization":
                if value[:7].lower() == b"bearer " and value[7:].strip():
                    authenticated = True
            elif name == b"x-sim-behavior":
                behavior_header = value.decode("latin-1")
        if not authenticated:
            await send_error(send, 401, "authentication_error", "invalid x-api-key", rid)
            return

        if route == "admin":
            await self.admin(scope, send, rid, api_key.decode("latin-1"))
        elif route in ("messages", "count_tokens"):
            await self.messages(receive, send, rid, serial, behavior_header, route == "messages")
        else:
            await self.models(scope, send, rid, behavior_header, route == "models")

    async def _apply(self, behavior: Behavior, send: Send, rid: bytes) -> bool:
        """Sleep as configured and send an injected error; True if the request is answered."""
        delay = self.latency + behavior.slow_ms / 1000
        if delay:
            await asyncio.sleep(delay)
        if behavior.error is None:
            return False
        status, error_type, message = INJECTED_ERRORS[behavior.error]
        extra: Headers = []
        if status == 429:
            extra = [(b"retry-after", b"%d" % RETRY_AFTER_SECONDS), *rate_limit_headers(0, 0, True)]
        await send_error(send, status, error_type, message, rid, extra, behavior.drop)
        return True

    async def admin(self, scope: Scope, send: Send, rid: bytes, api_key: str) -> None:
        """The Admin API's usage report and names (gateway/simulator/admin_report.py)."""
        if not admin_report.is_admin_key(api_key):
            message = "invalid x-api-key: this endpoint needs an Admin API key (sk-ant-admin…)"
            await send_error(send, 401, "authentication_error", message, rid)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            body = admin_report.ROUTES[scope["path"]](query)
        except admin_report.BadRequest as exc:
            await send_error(send, 400, "invalid_request_error", str(exc), rid)
            return
        await send_json(send, 200, dumps(body), rid)

    async def models(
        self, scope: Scope, send: Send, rid: bytes, behavior_header: str | None, listing: bool
    ) -> None:
        try:
            behavior = parse_behavior(behavior_header) if behavior_header else NORMAL
        except ValueError as exc:
            await send_error(send, 400, "invalid_request_error", str(exc), rid)
            return
        if await self._apply(behavior, send, rid):
            return
        if not listing:
            model_id = unquote(scope["path"][len("/v1/models/") :])
            model = catalog.get_model(model_id)
            if model is None:
                await send_error(send, 404, "not_found_error", f"model: {model_id}", rid)
            else:
                await send_json(send, 200, dumps(model), rid, drop=behavior.drop)
            return
        query: bytes = scope.get("query_string", b"")
        if not query:
            await send_json(send, 200, _DEFAULT_MODEL_LIST, rid, drop=behavior.drop)
            return
        params = parse_qs(query.decode("latin-1"))
        try:
            limit = int(params.get("limit", ["20"])[0])
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            message = "limit: Input should be an integer between 1 and 1000"
            await send_error(send, 400, "invalid_request_error", message, rid)
            return
        page = catalog.list_page(
            limit, params.get("after_id", [None])[0], params.get("before_id", [None])[0]
        )
        await send_json(send, 200, dumps(page), rid, drop=behavior.drop)

    async def messages(
        self,
        receive: Receive,
        send: Send,
        rid: bytes,
        serial: str,
        behavior_header: str | None,
        create: bool,
    ) -> None:
        try:
            raw = await read_body(receive)
        except BodyTooLarge:
            await send_error(
                send, 413, "request_too_large", "Request exceeds the maximum size", rid
            )
            return
        if raw is None:
            return  # the client disconnected before sending its body: nobody to answer
        try:
            body = loads(raw)
        except JSONDecodeError as exc:
            await send_error(send, 400, "invalid_request_error", f"Invalid JSON body: {exc}", rid)
            return
        problem = validate(body, needs_max_tokens=create)
        if problem is not None:
            await send_error(send, 400, "invalid_request_error", problem, rid)
            return

        user_text = last_user_text(body["messages"])
        spec = behavior_header if behavior_header is not None else magic_behavior(user_text)
        try:
            behavior = parse_behavior(spec) if spec else NORMAL
        except ValueError as exc:
            await send_error(send, 400, "invalid_request_error", str(exc), rid)
            return
        if await self._apply(behavior, send, rid):
            return

        try:
            measure = measure_input(body)
        except RecursionError:  # content nested beyond reason: refused as the API would
            await send_error(
                send, 400, "invalid_request_error", "messages: content is nested too deeply", rid
            )
            return
        if behavior.prompt_tokens:
            measure.total_tokens = max(behavior.prompt_tokens, measure.cached_tokens + 1)
        if not create:
            payload = dumps({"input_tokens": measure.total_tokens})
            await send_json(send, 200, payload, rid, drop=behavior.drop)
            return

        created = read = 0
        if measure.prefix_key is not None:
            if self.cache.seen_before(measure.prefix_key):
                read = measure.cached_tokens
            else:
                created = measure.cached_tokens
        input_tokens = measure.total_tokens - measure.cached_tokens
        output_tokens, first_word, stop_reason = plan_output(user_text, body["max_tokens"])
        model: str = body["model"]
        usage = {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 0 if measure.ttl_1h else created,
                "ephemeral_1h_input_tokens": created if measure.ttl_1h else 0,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }
        tool_use = server_tool_use(body.get("tools"))
        if tool_use is not None:
            usage["server_tool_use"] = tool_use
        limits = rate_limit_headers(measure.total_tokens, output_tokens)
        message_id = "msg_sim_" + serial

        if not body.get("stream"):
            payload = dumps(
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": output_text(first_word, output_tokens)}],
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": usage,
                }
            )
            await send_json(send, 200, payload, rid, limits, behavior.drop)
            return

        headers = [*SSE_HEADERS, (b"request-id", rid), *limits]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        deltas = delta_events(first_word, output_tokens)
        start = sse(
            b"message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {**usage, "output_tokens": 1},
                },
            },
        )
        finish = True
        if behavior.drop:
            events = [start, BLOCK_START, PING, *deltas[:1]]
            finish = False
        elif behavior.stream_error:
            events = [start, BLOCK_START, PING, *deltas[:STREAM_ERROR_AFTER_DELTAS], STREAM_ERROR]
        else:
            message_delta = sse(
                b"message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {
                        "input_tokens": input_tokens,
                        "cache_creation_input_tokens": created,
                        "cache_read_input_tokens": read,
                        "output_tokens": output_tokens,
                        **({"server_tool_use": tool_use} if tool_use is not None else {}),
                    },
                },
            )
            events = [start, BLOCK_START, PING, *deltas, BLOCK_STOP, message_delta, MESSAGE_STOP]

        # One ASGI body message per SSE event so a relaying proxy sees them one at a time.
        drip = behavior.drip_ms / 1000
        last = len(events) - 1
        for i, event in enumerate(events):
            if drip and i:
                await asyncio.sleep(drip)
            await send(
                {"type": "http.response.body", "body": event, "more_body": i < last or not finish}
            )
        # With drop, returning without more_body=False makes the server cut the connection.


app = Simulator.from_env()
