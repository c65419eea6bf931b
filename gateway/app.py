"""The gateway: a lean ASGI app for `/v1/...`, dispatched from console/asgi.py ahead of Django.

    POST /v1/messages               JSON, or SSE relayed chunk by chunk as it arrives
    POST /v1/messages/count_tokens
    GET  /v1/models, /v1/models/{id}

Per request, one `GatewayRequest` (parsed headers, key context, route, body, meter, relay state)
goes through the named steps of `Gateway.handle`: authenticate the console key (apikeys
verification, cached), check the endpoint, resolve the route (upstream + workspace policy), read
the body (at most 32 MB, enforced while reading) and check what the gateway itself needs (model,
max_tokens) against the workspace policy (model allow-list, max_tokens ceiling), reserve the
maximum cost against the spending caps (billing.spend), forward the body unchanged to the
upstream over a pooled aiohttp session, relay the answer, settle the cost and publish exactly one
usage event (usage.stream; a deque append, flushed to Redis by a thread). Any step refuses by
raising GatewayError; `GatewayRequest.answer_error` says it in the one way still open.

Why not a Django view: Django's handler alone caps a proxy near 1,150 req/s on the 2-core dev
machine; this app does no ORM work on cache hits and runs nothing blocking on the event loop
(cache misses load in a thread). See docs/decisions/0003-gateway-http-client.md for the client.

Requests without a valid key (missing, malformed, unknown) belong to no organization, so they are
not usage events: they are counted in `stats` and logged without the key. Revoked and expired keys
still name their organization, so their 401s are metered to it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import random
import re
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import orjson

from billing import spend
from core.client_ip import scope_client_ip
from usage import pricing
from usage.stream import publisher

from . import auth, metrics, routing, unauthenticated, upstream_rules
from .errors import GatewayError, error_body, rate_limited, sse_error_event
from .sse import MODEL_ID, StreamUsage, error_type_of, model_of, take_usage

logger = logging.getLogger("gateway")
# One line per request (console/logformat.py: LOG_FORMAT=json makes the fields keys).
access_log = logging.getLogger("gateway.requests")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_BODY_BYTES = 32 * 1024 * 1024  # Anthropic's Messages API request size limit
BODY_READ_TIMEOUT = 60.0  # a client silent this long while sending its body gets a 408
BODY_TOTAL_TIMEOUT = 600.0  # and the whole body must arrive within this (32 MB at ~55 KB/s)
MAX_TOKENS_LIMIT = 1_000_000  # beyond any model's output window: refused before pricing
DEFAULT_VERSION = b"2023-06-01"
CONNECT_TIMEOUT = 10.0

# Response headers of the upstream that reach the client.
_FORWARDED = frozenset(
    {b"content-type", b"content-encoding", b"request-id", b"retry-after", b"x-should-retry"}
)
_RATELIMIT = b"anthropic-ratelimit-"
_JSON = (b"content-type", b"application/json")
LIST_PARAMS = frozenset({"limit", "before_id", "after_id"})

NO_COST = pricing.Cost(0)
stats: Counter[str] = Counter()  # refusals that are not usage events, by reason


@lru_cache(maxsize=64)
def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=seconds)


def new_request_id() -> str:
    # Time-ordered (microseconds) then 48 random bits: unique across processes, sortable. An id
    # needs no secrecy, so the module's generator (reseeded in forked children) replaces
    # os.urandom, a system call per request (~2 % of a worker's time under load).
    return f"req_gw_{time.time_ns() // 1000:014x}{random.getrandbits(48):012x}"


def decoded(payload: bytes, encoding: str | None) -> bytes | None:
    """The body without its content-encoding (gzip, deflate); None if it cannot be read."""
    if not encoding or encoding == "identity":
        return payload
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:  # gzip or zlib header; bounded, so a small bomb cannot fill the memory
            inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)
            body = inflater.decompress(payload, MAX_BODY_BYTES)
        except zlib.error:
            return None
        return None if inflater.unconsumed_tail else body
    logger.warning("Upstream answered in %s encoding: not metered", encoding)
    return None


def model_id_of(scope: Scope) -> str | None:
    """The model id of `GET /v1/models/{id}` (None for the list), as a plain id. The path goes
    upstream with the organization's key, so nothing but an id may ride in it: no encoded
    slash, dot-segment or query (`..%2Fmessages%2Fbatches` would reach another endpoint)."""
    path: str = scope["path"]
    if path in ("/v1/models", "/v1/models/"):
        return None
    model = path[len("/v1/models/") :]
    raw = scope.get("raw_path")
    if not MODEL_ID.fullmatch(model) or (raw is not None and raw != path.encode("ascii")):
        raise GatewayError("not_found_error", "Model not found: that is not a model id.")
    return model


def list_query(scope: Scope) -> str:
    """Anthropic's paging parameters of the models list, re-encoded; anything else dropped."""
    query = scope.get("query_string") or b""
    if not query:
        return ""
    pairs = [
        (name, value)
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=False)
        if name in LIST_PARAMS and len(value) <= 128
    ]
    return "?" + urlencode(pairs) if pairs else ""


def filter_model_list(payload: bytes, route: routing.Route) -> bytes:
    """A models page reduced to the models the workspace's allow-list permits."""
    try:
        page = orjson.loads(payload)
        models = [m for m in page["data"] if route.allows(m["id"])]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return payload
    page["data"] = models
    page["first_id"] = models[0]["id"] if models else None
    page["last_id"] = models[-1]["id"] if models else None
    return orjson.dumps(page)


UPSTREAM_NOT_REACHED = "The upstream API could not be reached."
TOO_MANY_REFUSED = (
    "Too many requests without a valid API key from this address: wait before trying again, "
    "and use an API key created in this console."
)


def api_answer(payload: bytes | None, status: int, content_type: str, endpoint: str) -> dict | None:
    """The upstream's JSON answer if it is the Anthropic API's (an error in its shape, or what
    the endpoint answers), else None."""
    if not payload or not payload.startswith(b"{"):
        return None
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    if status != 200:
        return data if data.get("type") == "error" and isinstance(data.get("error"), dict) else None
    if "json" not in content_type:
        return None
    if endpoint == "messages":
        return data if data.get("type") == "message" else None
    if endpoint == "count_tokens":
        return data if isinstance(data.get("input_tokens"), int) else None
    return data if isinstance(data.get("data"), list) or data.get("type") == "model" else None


# What the gateway itself reads from a body: a top-level object naming one twice is refused, since
# another parser (the upstream's) may take the first value where orjson takes the last.
CHECKED_NAMES = ("model", "max_tokens", "stream")
_QUOTED_NAMES = tuple(f'"{name}"'.encode() for name in CHECKED_NAMES)
# A key spelled with \u escapes ("\u006dodel"): its plain spelling is not in the bytes.
_ESCAPED_KEY = re.compile(rb'"(?:[A-Za-z_]|\\u00[0-9A-Fa-f]{2}){1,40}"\s*:')


def repeats_a_checked_name(body: bytes) -> bool:
    """Whether the body's top-level object names `model`, `max_tokens` or `stream` twice. The
    bytes are searched first (a count per name); only a body that could repeat one (a name found
    twice, e.g. in a tool's schema, or a key spelled with escapes) is decoded again, key by key."""
    if all(body.count(name) < 2 for name in _QUOTED_NAMES) and not (
        b"\\u00" in body and any(b"\\u00" in m.group() for m in _ESCAPED_KEY.finditer(body))
    ):
        return False
    objects: list[list[tuple[str, Any]]] = []

    def keep(pairs: list[tuple[str, Any]]) -> None:
        objects.append(pairs)  # the top-level object is the last one to close

    try:
        json.loads(body, object_pairs_hook=keep)
    except ValueError:
        return False  # orjson read it; the upstream will refuse what json cannot
    names = [name for name, _ in objects[-1] if name in CHECKED_NAMES] if objects else []
    return len(names) != len(set(names))


class Meter:
    """The one usage event of a request. `emit()` publishes it once, whatever happens."""

    __slots__ = (
        "api_key_id",
        "emitted",
        "endpoint",
        "error_type",
        "model",
        "organization_id",
        "request_id",
        "reservation",
        "service_tier",
        "started",
        "status",
        "stream",
        "upstream_request_id",
        "usage",
        "wall",
        "workspace_id",
    )

    def __init__(self, request_id: str, endpoint: str) -> None:
        self.request_id = request_id
        self.endpoint = endpoint
        self.started = time.perf_counter()
        self.wall = time.time()
        self.organization_id: int | None = None
        self.workspace_id: int | None = None
        self.api_key_id: int | None = None
        self.model = ""
        self.stream = False
        self.status = 0
        self.error_type = ""
        self.usage: dict[str, int] = {}
        self.service_tier = ""
        self.upstream_request_id = ""
        self.reservation: spend.Reservation | None = None
        self.emitted = False

    def fail(self, status: int, error_type: str) -> None:
        self.status = status
        self.error_type = error_type

    async def emit(self) -> None:
        if self.emitted or self.organization_id is None:
            return
        self.emitted = True
        cost = NO_COST
        if self.usage and self.model:
            try:
                await pricing.aensure_loaded()  # a long stream may outlive the table's TTL
                cost = pricing.cost_of(self.model, self.usage, self.wall)
            except Exception:  # pricing must never lose the event
                logger.exception("Could not price request %s", self.request_id)
        reservation, self.reservation = self.reservation, None
        usage = self.usage
        publisher().publish(
            {
                "request_id": self.request_id,
                "upstream_request_id": self.upstream_request_id,
                "time": self.wall,
                "organization_id": self.organization_id,
                "workspace_id": self.workspace_id,
                "api_key_id": self.api_key_id,
                "endpoint": self.endpoint,
                "model": self.model,
                "stream": self.stream,
                "status": self.status,
                "error_type": self.error_type,
                "input_tokens": usage.get("input_tokens", 0),
                "output_tokens": usage.get("output_tokens", 0),
                "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
                "cache_creation_1h_input_tokens": usage.get("cache_creation_1h_input_tokens", 0),
                "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
                "web_search_requests": usage.get("web_search_requests", 0),
                "web_fetch_requests": usage.get("web_fetch_requests", 0),
                "code_execution_seconds": usage.get("code_execution_seconds", 0),
                "service_tier": self.service_tier,
                "cost_micros": cost.micros,
                "server_tool_cost_micros": cost.server_tools,
                "fallback_priced": cost.fallback,
                "latency_ms": round((time.perf_counter() - self.started) * 1000, 3),
            },
            counters=spend.settlement(reservation, cost.micros),
        )


def log_request(scope: Scope, meter: Meter, seconds: float) -> None:
    """The request's line: ids, never key material (the key's id), path without query."""
    ms = seconds * 1000
    access_log.info(
        "request %s %s %s %d %.1fms org=%s key=%s model=%s%s",
        meter.request_id, scope["method"], scope["path"], meter.status, ms,
        meter.organization_id or "-", meter.api_key_id or "-", meter.model or "-",
        f" error={meter.error_type}" if meter.error_type else "",
        extra={"fields": {
            "request_id": meter.request_id, "method": scope["method"], "path": scope["path"],
            "status": meter.status, "latency_ms": round(ms, 1),
            "organization_id": meter.organization_id, "workspace_id": meter.workspace_id,
            "api_key_id": meter.api_key_id, "model": meter.model or None,
            "stream": meter.stream, "error_type": meter.error_type or None,
            "upstream_request_id": meter.upstream_request_id or None,
        }},
    )  # fmt: skip


class ClientHeaders:
    """The request headers the gateway reads, parsed once."""

    __slots__ = ("api_key", "beta", "content_length", "content_type", "forwarded", "version")

    def __init__(self, raw_headers: list[tuple[bytes, bytes]]) -> None:
        api_key = bearer = version = content_type = content_length = None
        betas: list[bytes] = []
        forwarded = False
        for name, value in raw_headers:
            if name == b"x-api-key":
                api_key = value.strip()
            elif name == b"authorization":
                parts = value.split(None, 1)  # the scheme, then any whitespace, then the token
                if len(parts) == 2 and parts[0].lower() == b"bearer":
                    bearer = parts[1].strip()
            elif name == b"anthropic-version":
                version = value
            elif name == b"anthropic-beta":
                betas.append(value)  # repeated headers mean a list, as a comma-joined one
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
            elif name == upstream_rules.HOP_HEADER_BYTES:
                forwarded = True  # sent by a console's gateway
        self.forwarded = forwarded
        self.api_key: bytes | None = api_key or bearer  # x-api-key first, as Anthropic's API
        self.version: bytes | None = version
        self.beta: bytes | None = b",".join(betas) if betas else None
        self.content_type: bytes | None = content_type
        self.content_length: bytes | None = content_length


def endpoint_of(method: str, path: str) -> str:
    """`messages`, `count_tokens`, `models`; `""` for a known path with the wrong method;
    `other` for an unknown path."""
    if path == "/v1/messages":
        return "messages" if method == "POST" else ""
    if path == "/v1/messages/count_tokens":
        return "count_tokens" if method == "POST" else ""
    if path == "/v1/models" or path.startswith("/v1/models/"):
        return "models" if method == "GET" else ""
    return "other"


class GatewayRequest:
    """One request through the gateway: what the client sent, whose key it is, where it goes,
    and how far the answer has got (the relay state), so every step reads and writes here.

    Relay state: `response_started` once the status line is sent (after it, a refusal can no
    longer be a JSON error); `stream_open` while an SSE answer is being relayed (a failure then
    ends the stream with an `event: error`, in `end_stream_with_error`, the one place that does).
    """

    __slots__ = (
        "body",
        "context",
        "endpoint",
        "headers",
        "listed_for",
        "meter",
        "parsed",
        "receive",
        "response_started",
        "route",
        "scope",
        "send",
        "stream_open",
        "upstream",
        "url",
        "watcher",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.endpoint = endpoint_of(scope["method"], scope["path"])
        self.meter = Meter(new_request_id(), self.endpoint or "other")
        self.headers = ClientHeaders(scope["headers"])
        self.context: auth.KeyContext | None = None
        self.route: routing.Route | None = None
        self.upstream: routing.Upstream | None = None
        self.url = ""
        self.body = b""
        self.parsed: dict | None = None  # the JSON body, for messages and count_tokens
        self.listed_for: routing.Route | None = None  # a models list filtered for this route
        self.watcher: asyncio.Future | None = None  # the client's disconnect, for streams
        self.response_started = False
        self.stream_open = False

    # -- answering ---------------------------------------------------------------------------

    async def start_response(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.response_started = True
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def answer_error(self, error: GatewayError) -> None:
        """Tell the client about a refusal or failure in the only way still open to us."""
        self.meter.fail(error.status, error.error_type)
        if self.stream_open:
            await self.end_stream_with_error(error)
            return
        if self.response_started:  # a JSON answer is already on its way: nothing to add
            return
        body = error_body(error.error_type, error.message, self.meter.request_id)
        await self.start_response(
            error.status,
            [
                _JSON,
                (b"content-length", b"%d" % len(body)),
                (b"request-id", self.meter.request_id.encode()),
                *error.headers,
            ],
        )
        await self.send_last(body)

    async def send_last(self, body: bytes) -> None:
        """The last body message of the answer: the usage event is published (journaled on
        disk, usage/stream.py) first, so a process killed once the client has its answer has
        already metered it."""
        await self.meter.emit()
        await self.send({"type": "http.response.body", "body": body})

    async def end_stream_with_error(self, error: GatewayError) -> None:
        """Mid-stream the status is sent: end the stream the way Anthropic does."""
        self.stream_open = False
        try:
            event = sse_error_event(error.error_type, error.message)
            await self.send({"type": "http.response.body", "body": event, "more_body": True})
            await self.send_last(b"")
        except Exception as exc:  # the client is gone: nothing left to tell
            logger.info("Could not end stream %s: %r", self.meter.request_id, exc)

    def client_left(self) -> bool:
        return self.watcher is not None and self.watcher.done()


class Gateway:
    def __init__(self) -> None:
        self._sessions: dict[int, aiohttp.ClientSession] = {}

    # -- plumbing ----------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        """One pooled session per event loop (a uvicorn worker has one)."""
        loop = asyncio.get_running_loop()
        found = self._sessions.get(id(loop))
        if found is None or found.closed:
            found = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
                ),
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
            )
            self._sessions[id(loop)] = found
        return found

    async def startup(self) -> None:
        # Django, the SDKs and their imports are a large, long-lived heap: freezing it keeps
        # full collections (tens of ms, a p99 spike under load) from walking it again and again.
        gc.collect()
        gc.freeze()
        # The publisher's thread at once, not at the first request: it replays the journals of
        # gateway processes that died (usage/stream.py), even before traffic arrives.
        publisher().start()

    async def shutdown(self) -> None:
        for session in list(self._sessions.values()):
            await session.close()
        self._sessions.clear()
        await asyncio.get_running_loop().run_in_executor(None, publisher().close)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    # -- a request ---------------------------------------------------------------------------

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = GatewayRequest(scope, receive, send)
        try:
            await self.handle(request)
        except GatewayError as error:
            await request.answer_error(error)
        except Exception:
            logger.exception("Gateway error on request %s", request.meter.request_id)
            await request.answer_error(GatewayError("api_error", "Internal gateway error.", 500))
        finally:
            if request.watcher is not None and not request.watcher.done():
                request.watcher.cancel()
            meter = request.meter
            try:
                await meter.emit()
            except Exception:
                logger.exception("Could not meter request %s", meter.request_id)
            seconds = time.perf_counter() - meter.started
            metrics.observe(meter.endpoint, meter.status, meter.model, seconds)
            if access_log.isEnabledFor(logging.INFO):
                log_request(scope, meter, seconds)

    async def handle(self, request: GatewayRequest) -> None:
        """The steps of a request, in order; each raises GatewayError to refuse it."""
        self.refuse_loops(request)
        await self.authenticate(request)
        self.check_endpoint(request)
        await self.resolve_route(request)
        if request.endpoint == "models":
            self.target_models(request)
        else:
            await self.read_body(request)
            self.check_body(request)
            if request.endpoint == "messages":
                await self.reserve_spend(request)
            request.url = request.upstream.base_url + request.scope["path"]
        await self.forward(request, self.upstream_headers(request))

    @staticmethod
    def refuse_loops(request: GatewayRequest) -> None:
        """A request another console's gateway (or this one) forwarded: its upstream is a
        console. Refused before anything else, so no chain of consoles ever recurses."""
        if request.headers.forwarded:
            stats["forwarded_by_a_console"] += 1
            raise GatewayError("invalid_request_error", upstream_rules.HOP_REFUSED)

    async def authenticate(self, request: GatewayRequest) -> None:
        """Authentication first: nothing else is said to a caller without a valid key. Requests
        without a valid key are limited per client address (gateway/unauthenticated.py)."""
        raw_key = request.headers.api_key
        if unauthenticated.limiter.blocked:  # an address over its limit: no lookup for it
            address = scope_client_ip(request.scope)
            wait = unauthenticated.limiter.retry_after(address)
            if wait and not (raw_key and auth.is_cached_valid(raw_key.decode("latin-1"))):
                stats["unauthenticated_limited"] += 1
                raise rate_limited(TOO_MANY_REFUSED, wait)
        if not raw_key:
            stats["missing_key"] += 1
            await self.count_refusal(request)
            raise GatewayError("authentication_error", auth.MISSING_KEY_MESSAGE)
        verification = await auth.verify(raw_key.decode("latin-1"))
        context = request.context = verification.context
        if context is not None:
            meter = request.meter
            meter.organization_id = context.organization_id
            meter.workspace_id = context.workspace_id
            meter.api_key_id = context.key_id
        if not verification.ok:
            stats[f"key_{verification.failure}"] += 1
            if context is None:  # malformed or unknown: no organization's key
                logger.info("Refused a request with a %s API key", verification.failure)
                await self.count_refusal(request)
            raise GatewayError("authentication_error", verification.message)

    @staticmethod
    async def count_refusal(request: GatewayRequest) -> None:
        """Count a request refused for want of a valid key; over the limit, a 429 instead."""
        wait = await unauthenticated.limiter.count(scope_client_ip(request.scope))
        if wait:
            stats["unauthenticated_limited"] += 1
            raise rate_limited(TOO_MANY_REFUSED, wait)

    @staticmethod
    def check_endpoint(request: GatewayRequest) -> None:
        scope = request.scope
        if not request.endpoint:
            raise GatewayError("not_found_error", f"{scope['method']} {scope['path']} not found")
        if request.endpoint == "other":
            raise GatewayError("not_found_error", f"Not found: {scope['path']}")

    @staticmethod
    async def resolve_route(request: GatewayRequest) -> None:
        context = request.context
        route = request.route = await routing.route_for(
            context.organization_id, context.workspace_id
        )
        upstream = route.upstream
        if upstream is None:
            raise GatewayError("permission_error", route.problem)
        if upstream.reaches(request.scope.get("server")):
            raise GatewayError(
                "permission_error", f"{routing.NO_UPSTREAM} {upstream_rules.OWN_ADDRESS}"
            )
        request.upstream = upstream

    @staticmethod
    def target_models(request: GatewayRequest) -> None:
        """`GET /v1/models[/{id}]`: the upstream URL, and the model allow-list applied."""
        route, base_url = request.route, request.upstream.base_url
        model = model_id_of(request.scope)
        if model is None:  # the list: this workspace's models only, Anthropic's paging
            if route.allowed_models:
                request.listed_for = route
            request.url = base_url + "/v1/models" + list_query(request.scope)
            return
        request.meter.model = model
        if not route.allows(model):
            raise GatewayError(
                "permission_error", f"The model {model} is not allowed in this workspace."
            )
        request.url = base_url + "/v1/models/" + model

    async def read_body(self, request: GatewayRequest) -> None:
        content_type = request.headers.content_type
        content_length = request.headers.content_length
        if content_type is not None and b"json" not in content_type.lower():
            raise GatewayError("invalid_request_error", "Content-Type must be application/json.")
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                raise GatewayError("invalid_request_error", "Invalid Content-Length.") from None
            if declared > MAX_BODY_BYTES:
                raise GatewayError("request_too_large", "Request exceeds the maximum size (32 MB).")
        receive = request.receive
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BODY_TOTAL_TIMEOUT
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT) as timer:
                while True:
                    message = await receive()
                    # Idle timeout, renewed by every chunk, within an overall bound.
                    timer.reschedule(min(loop.time() + BODY_READ_TIMEOUT, deadline))
                    if message["type"] == "http.disconnect":
                        raise GatewayError("invalid_request_error", "Client disconnected.", 499)
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        raise GatewayError(
                            "request_too_large", "Request exceeds the maximum size (32 MB)."
                        )
                    chunks.append(chunk)
                    if not message.get("more_body"):
                        break
        except TimeoutError:
            raise GatewayError(
                "timeout_error", "The request body was not received in time.", 408
            ) from None
        request.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def check_body(self, request: GatewayRequest) -> None:
        """The body's own checks, then the workspace policy (model allow-list, max_tokens
        ceiling)."""
        parsed = request.parsed = self.parse(request.body, request.endpoint)
        model = parsed["model"]
        meter, route = request.meter, request.route
        meter.model = model
        if not route.allows(model):
            raise GatewayError(
                "permission_error", f"The model {model} is not allowed in this workspace."
            )
        if request.endpoint == "messages":
            meter.stream = parsed.get("stream") is True
            max_tokens = parsed["max_tokens"]
            ceiling = route.max_tokens_ceiling
            if ceiling is not None and max_tokens > ceiling:
                raise GatewayError(
                    "invalid_request_error",
                    f"max_tokens: {max_tokens} is above this workspace's limit of {ceiling}.",
                )

    @staticmethod
    async def reserve_spend(request: GatewayRequest) -> None:
        """Reserve the request's maximum cost against every cap that applies (key, workspace,
        organization, credits, the shared upstream's: billing.spend), in one Redis call."""
        await pricing.aensure_loaded()
        try:
            request.meter.reservation = await spend.reserve(
                organization_id=request.context.organization_id,
                workspace_id=request.context.workspace_id,
                api_key_id=request.context.key_id,
                model=request.parsed["model"],
                max_tokens=request.parsed["max_tokens"],
                body_bytes=len(request.body),
                shared_upstream=request.upstream.shared,
            )
        except spend.CapReached as reached:
            metrics.RESERVATIONS_REFUSED.inc()
            raise GatewayError("invalid_request_error", reached.message) from None

    @staticmethod
    def upstream_headers(request: GatewayRequest) -> dict[str, str]:
        client = request.headers
        headers = {
            "x-api-key": request.upstream.api_key,
            "anthropic-version": (client.version or DEFAULT_VERSION).decode("latin-1"),
            # Without it any encoding is acceptable (RFC 9110): the answer must stay readable
            # for metering, and the client gets what it would get from the API.
            "accept-encoding": "identity",
            # Marks what a console forwards: a console receiving it refuses (refuse_loops).
            upstream_rules.HOP_HEADER: "1",
        }
        if client.beta:
            headers["anthropic-beta"] = client.beta.decode("latin-1")
        for value in headers.values():
            # Printable ASCII only: control characters and non-ASCII bytes are never forwarded.
            if not (value.isascii() and value.isprintable()):
                raise GatewayError("invalid_request_error", "Invalid characters in a header.")
        if request.body:
            headers["content-type"] = "application/json"
        return headers

    @staticmethod
    def parse(body: bytes, endpoint: str) -> dict:
        """The few checks the gateway needs itself; the upstream validates the rest."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise GatewayError("invalid_request_error", f"Invalid JSON body: {exc}") from None
        if not isinstance(request, dict):
            raise GatewayError("invalid_request_error", "The request body must be a JSON object.")
        if repeats_a_checked_name(body):
            raise GatewayError(
                "invalid_request_error",
                "The request body names model, max_tokens or stream more than once: send each "
                "once.",
            )
        model = request.get("model")
        if model is None:
            raise GatewayError("invalid_request_error", "model: Field required")
        if not isinstance(model, str) or not model or len(model) > 128:
            raise GatewayError("invalid_request_error", "model: Input should be a valid string")
        if not MODEL_ID.fullmatch(model):
            raise GatewayError(
                "invalid_request_error", "model: Input should be a model id (claude-sonnet-4-5)"
            )
        messages = request.get("messages")
        if messages is None:
            raise GatewayError("invalid_request_error", "messages: Field required")
        if not isinstance(messages, list):
            raise GatewayError("invalid_request_error", "messages: Input should be a valid list")
        if endpoint == "messages":
            max_tokens = request.get("max_tokens")
            if max_tokens is None:
                raise GatewayError("invalid_request_error", "max_tokens: Field required")
            if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
                raise GatewayError(
                    "invalid_request_error", "max_tokens: Input should be a valid integer"
                )
            if max_tokens < 1:
                raise GatewayError(
                    "invalid_request_error",
                    "max_tokens: Input should be greater than or equal to 1",
                )
            if max_tokens > MAX_TOKENS_LIMIT:
                raise GatewayError(
                    "invalid_request_error",
                    f"max_tokens: {max_tokens} is above the gateway's limit of {MAX_TOKENS_LIMIT}.",
                )
            stream = request.get("stream")
            if stream is not None and not isinstance(stream, bool):
                raise GatewayError(
                    "invalid_request_error", "stream: Input should be a valid boolean"
                )
        return request

    async def forward(self, request: GatewayRequest, headers: dict[str, str]) -> None:
        """Send the request upstream and relay the answer (SSE as it arrives, else whole)."""
        meter = request.meter
        # A streaming client that goes away is noticed between two chunks, the relay stops and
        # the event says so. A JSON request is not watched (a task per request costs
        # throughput): if its client left, the upstream still did (and bills) the work,
        # recorded as answered.
        if meter.stream:
            request.watcher = asyncio.ensure_future(request.receive())
        try:
            async with self.session().request(
                request.scope["method"],
                request.url,
                data=request.body or None,
                headers=headers,
                timeout=_timeout(request.upstream.timeout),
                allow_redirects=False,  # a redirect must not take the key to another host
            ) as response:
                out = [(b"console-request-id", meter.request_id.encode())]
                for name, value in response.raw_headers:
                    lowered = name.lower()
                    if lowered in _FORWARDED or lowered.startswith(_RATELIMIT):
                        out.append((lowered, value))
                        if lowered == b"request-id":
                            meter.upstream_request_id = value.decode("latin-1")
                content_type = response.headers.get("content-type", "")
                if response.status == 200 and content_type.startswith("text/event-stream"):
                    await self.relay_stream(request, response, out)
                else:
                    await self.relay_json(request, response, out)
        except aiohttp.ConnectionTimeoutError:  # like a refused connection: nothing answered
            logger.warning("Upstream connection timed out on %s", meter.request_id)
            metrics.upstream_error("unreachable")
            raise GatewayError("api_error", UPSTREAM_NOT_REACHED, 502) from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            metrics.upstream_error("timeout")
            raise GatewayError(
                "timeout_error", "The upstream API did not answer in time.", 504
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            logger.warning("Upstream failure on %s: %s", meter.request_id, type(exc).__name__)
            metrics.upstream_error("unreachable")
            raise GatewayError("api_error", UPSTREAM_NOT_REACHED, 502) from None

    async def relay_json(
        self, request: GatewayRequest, response: aiohttp.ClientResponse, out: list
    ) -> None:
        meter, status = request.meter, response.status
        payload = await response.read()
        # Asked for identity; an upstream that compresses anyway is relayed as it answered (its
        # content-encoding forwarded) and metered from a decoded copy.
        readable = decoded(payload, response.headers.get("content-encoding"))
        answer = api_answer(readable, status, response.content_type, request.endpoint)
        if answer is None:
            # Not the API's answer (a login page, a proxy's error, another service): never
            # relayed, and said in the words of a closed port, so neither tells about the host.
            logger.warning(
                "Upstream of %s answered HTTP %s, not as the API: not relayed",
                meter.request_id,
                status,
            )
            metrics.upstream_error("not_api")
            raise GatewayError("api_error", UPSTREAM_NOT_REACHED, 502)
        if request.listed_for is not None and status == 200:
            payload = filter_model_list(readable, request.listed_for)
            out = [h for h in out if h[0] != b"content-encoding"]
        meter.status = status
        if status >= 429:
            metrics.upstream_status(status)
        self.note_json(answer, status, meter)
        out.append((b"content-length", b"%d" % len(payload)))
        if request.client_left():  # a stream request answered in JSON (an error) meanwhile
            meter.error_type = meter.error_type or "client_disconnected"
            meter.status = 499
        await request.start_response(status, out)
        await request.send_last(payload)

    @staticmethod
    def note_json(data: dict, status: int, meter: Meter) -> None:
        if status != 200:
            meter.error_type = error_type_of(data.get("error"))
            return
        if meter.endpoint != "messages":
            return
        usage = data.get("usage")
        if isinstance(usage, dict):
            meter.service_tier = take_usage(usage, meter.usage) or meter.service_tier
        meter.model = model_of(data.get("model")) or meter.model

    @staticmethod
    async def relay_stream(
        request: GatewayRequest, response: aiohttp.ClientResponse, out: list
    ) -> None:
        meter, send = request.meter, request.send
        meter.status = 200
        request.stream_open = True
        await request.start_response(200, out)
        parser = StreamUsage()
        try:
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                parser.feed(chunk)
                if request.client_left():
                    meter.fail(499, "client_disconnected")
                    break
        finally:
            # Cut short (client gone, upstream dropped): estimated from what was relayed.
            meter.usage = parser.settled_usage(request.parsed["max_tokens"])
            if parser.model:
                meter.model = parser.model
            if parser.service_tier:
                meter.service_tier = parser.service_tier
            if parser.error_type and meter.status == 200:
                meter.error_type = parser.error_type
                metrics.upstream_error("stream_error")
        request.stream_open = False
        await request.send_last(b"")


application = Gateway()
