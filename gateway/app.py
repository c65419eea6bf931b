"""The gateway: a lean ASGI app for `/v1/...`, dispatched from console/asgi.py ahead of Django.

    POST /v1/messages               JSON, or SSE relayed chunk by chunk as it arrives
    POST /v1/messages/count_tokens
    GET  /v1/models, /v1/models/{id}

Per request: authenticate the console key (apikeys verification, cached), read the body (at most
32 MB, enforced while reading), validate what the gateway itself needs (model, max_tokens), apply
the workspace policy (model allow-list, max_tokens ceiling), reserve the maximum cost against the
organization's monthly cap (billing.spend), forward the body unchanged to the organization's
upstream over a pooled aiohttp session, relay the answer, settle the cost and publish exactly one
usage event (usage.stream; a deque append, flushed to Redis by a thread).

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
import logging
import random
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
from usage import pricing
from usage.stream import publisher

from . import auth, routing
from .errors import GatewayError, error_body, sse_error_event
from .sse import MODEL_ID, StreamUsage, error_type_of, model_of, take_usage

logger = logging.getLogger("gateway")

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
        cost = 0
        if self.usage and self.model:
            try:
                await pricing.aensure_loaded()  # a long stream may outlive the table's TTL
                cost = pricing.price_usage(self.model, self.usage, self.wall)
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
                "service_tier": self.service_tier,
                "cost_micros": cost,
                "latency_ms": round((time.perf_counter() - self.started) * 1000, 3),
            },
            counter=spend.settlement(reservation, cost),
        )


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
        method: str = scope["method"]
        path: str = scope["path"]
        if path == "/v1/messages":
            endpoint = "messages" if method == "POST" else ""
        elif path == "/v1/messages/count_tokens":
            endpoint = "count_tokens" if method == "POST" else ""
        elif path == "/v1/models" or path.startswith("/v1/models/"):
            endpoint = "models" if method == "GET" else ""
        else:
            endpoint = "other"
        meter = Meter(new_request_id(), endpoint or "other")
        state = {"started": False}

        async def respond_error(error: GatewayError) -> None:
            meter.fail(error.status, error.error_type)
            if state.get("open_stream"):  # mid-stream: end it the way Anthropic does
                state["open_stream"] = False
                try:
                    event = sse_error_event(error.error_type, error.message)
                    await send({"type": "http.response.body", "body": event, "more_body": True})
                    await send({"type": "http.response.body", "body": b""})
                except Exception as exc:  # the client is gone: nothing left to tell
                    logger.info("Could not end stream %s: %r", meter.request_id, exc)
                return
            if state["started"]:
                return
            state["started"] = True
            body = error_body(error.error_type, error.message, meter.request_id)
            await send(
                {
                    "type": "http.response.start",
                    "status": error.status,
                    "headers": [
                        _JSON,
                        (b"content-length", b"%d" % len(body)),
                        (b"request-id", meter.request_id.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

        try:
            await self.handle(scope, receive, send, meter, state, endpoint)
        except GatewayError as error:
            await respond_error(error)
        except Exception:
            logger.exception("Gateway error on request %s", meter.request_id)
            await respond_error(GatewayError("api_error", "Internal gateway error.", 500))
        finally:
            try:
                await meter.emit()
            except Exception:
                logger.exception("Could not meter request %s", meter.request_id)

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, meter: Meter, state: dict, endpoint: str
    ) -> None:
        raw_key = bearer = version = content_type = content_length = None
        betas: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                raw_key = value.strip()
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

        raw_key = raw_key or bearer  # x-api-key first, as Anthropic's API
        beta = b",".join(betas) if betas else None

        # Authentication first: nothing else is said to a caller without a valid key.
        if not raw_key:
            stats["missing_key"] += 1
            raise GatewayError("authentication_error", auth.MISSING_KEY_MESSAGE)
        verification = await auth.verify(raw_key.decode("latin-1"))
        context = verification.context
        if context is not None:
            meter.organization_id = context.organization_id
            meter.workspace_id = context.workspace_id
            meter.api_key_id = context.key_id
        if not verification.ok:
            stats[f"key_{verification.failure}"] += 1
            if context is None:
                logger.info("Refused a request with a %s API key", verification.failure)
            raise GatewayError("authentication_error", verification.message)
        if not endpoint:
            raise GatewayError("not_found_error", f"{scope['method']} {scope['path']} not found")
        if endpoint == "other":
            raise GatewayError("not_found_error", f"Not found: {scope['path']}")

        route = await routing.route_for(context.organization_id, context.workspace_id)
        upstream = route.upstream
        if upstream is None:
            raise GatewayError(
                "permission_error",
                "No usable upstream is configured for this organization: an Admin can set the "
                "Anthropic API key (and base URL) in the console under Settings → Upstream.",
            )

        body = b""
        listed_for: routing.Route | None = None
        if endpoint == "models":
            model = model_id_of(scope)
            if model is None:  # the list: this workspace's models only, Anthropic's paging
                if route.allowed_models:
                    listed_for = route
                url = upstream.base_url + "/v1/models" + list_query(scope)
            else:
                meter.model = model
                if not route.allows(model):
                    raise GatewayError(
                        "permission_error", f"The model {model} is not allowed in this workspace."
                    )
                url = upstream.base_url + "/v1/models/" + model
        else:
            body = await self.read_body(receive, content_type, content_length)
            request = self.parse(body, endpoint)
            model = request["model"]
            meter.model = model
            if not route.allows(model):
                raise GatewayError(
                    "permission_error", f"The model {model} is not allowed in this workspace."
                )
            if endpoint == "messages":
                meter.stream = request.get("stream") is True
                max_tokens = request["max_tokens"]
                ceiling = route.max_tokens_ceiling
                if ceiling is not None and max_tokens > ceiling:
                    raise GatewayError(
                        "invalid_request_error",
                        f"max_tokens: {max_tokens} is above this workspace's limit of {ceiling}.",
                    )
                await pricing.aensure_loaded()
                try:
                    meter.reservation = await spend.reserve(
                        organization_id=context.organization_id,
                        model=model,
                        max_tokens=max_tokens,
                        body_bytes=len(body),
                    )
                except spend.CapReached as reached:
                    raise GatewayError("invalid_request_error", reached.message) from None
            url = upstream.base_url + scope["path"]

        headers = {
            "x-api-key": upstream.api_key,
            "anthropic-version": (version or DEFAULT_VERSION).decode("latin-1"),
            # Without it any encoding is acceptable (RFC 9110): the answer must stay readable
            # for metering, and the client gets what it would get from the API.
            "accept-encoding": "identity",
        }
        if beta:
            headers["anthropic-beta"] = beta.decode("latin-1")
        for value in headers.values():
            # Printable ASCII only: control characters and non-ASCII bytes are never forwarded.
            if not (value.isascii() and value.isprintable()):
                raise GatewayError("invalid_request_error", "Invalid characters in a header.")
        if body:
            headers["content-type"] = "application/json"
        # A streaming client that goes away is noticed between two chunks, the relay stops and the
        # event says so. A JSON request is not watched (a task per request costs throughput): if
        # its client left, the upstream still did (and bills) the work, recorded as answered.
        watcher = asyncio.ensure_future(receive()) if meter.stream else None
        try:
            await self.forward(scope["method"], url, headers, body, upstream, meter, state, send,
                               watcher, listed_for)  # fmt: skip
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()

    async def read_body(
        self, receive: Receive, content_type: bytes | None, content_length: bytes | None
    ) -> bytes:
        if content_type is not None and b"json" not in content_type.lower():
            raise GatewayError("invalid_request_error", "Content-Type must be application/json.")
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                raise GatewayError("invalid_request_error", "Invalid Content-Length.") from None
            if declared > MAX_BODY_BYTES:
                raise GatewayError("request_too_large", "Request exceeds the maximum size (32 MB).")
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
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @staticmethod
    def parse(body: bytes, endpoint: str) -> dict:
        """The few checks the gateway needs itself; the upstream validates the rest."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise GatewayError("invalid_request_error", f"Invalid JSON body: {exc}") from None
        if not isinstance(request, dict):
            raise GatewayError("invalid_request_error", "The request body must be a JSON object.")
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

    async def forward(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        upstream: routing.Upstream,
        meter: Meter,
        state: dict,
        send: Send,
        watcher: asyncio.Future | None,
        listed_for: routing.Route | None = None,
    ) -> None:
        try:
            async with self.session().request(
                method,
                url,
                data=body or None,
                headers=headers,
                timeout=_timeout(upstream.timeout),
                allow_redirects=False,  # a redirect must not take the key to another host
            ) as response:
                status = response.status
                out = [(b"console-request-id", meter.request_id.encode())]
                for name, value in response.raw_headers:
                    lowered = name.lower()
                    if lowered in _FORWARDED or lowered.startswith(_RATELIMIT):
                        out.append((lowered, value))
                        if lowered == b"request-id":
                            meter.upstream_request_id = value.decode("latin-1")
                content_type = response.headers.get("content-type", "")
                if status == 200 and content_type.startswith("text/event-stream"):
                    await self.relay_stream(response, out, meter, state, send, watcher)
                    return
                payload = await response.read()
                # Asked for identity; an upstream that compresses anyway is relayed as it
                # answered (its content-encoding forwarded) and metered from a decoded copy.
                readable = decoded(payload, response.headers.get("content-encoding"))
                if listed_for is not None and status == 200 and readable is not None:
                    payload = readable = filter_model_list(readable, listed_for)
                    out = [h for h in out if h[0] != b"content-encoding"]
                out.append((b"content-length", b"%d" % len(payload)))
                state["started"] = True
                await send({"type": "http.response.start", "status": status, "headers": out})
                await send({"type": "http.response.body", "body": payload})
                meter.status = status
                self.note_json(readable if readable is not None else b"", status, meter)
                if watcher is not None and watcher.done():
                    meter.error_type = meter.error_type or "client_disconnected"
                    meter.status = 499
        except (TimeoutError, aiohttp.ServerTimeoutError):
            error = GatewayError("timeout_error", "The upstream API did not answer in time.", 504)
            await self.upstream_failed(error, meter, state, send)
        except (aiohttp.ClientError, OSError) as exc:
            logger.warning("Upstream failure on %s: %s", meter.request_id, type(exc).__name__)
            error = GatewayError("api_error", "The upstream API could not be reached.", 502)
            await self.upstream_failed(error, meter, state, send)

    @staticmethod
    async def upstream_failed(error: GatewayError, meter: Meter, state: dict, send: Send) -> None:
        if not state["started"]:
            raise error
        # Mid-stream: the status is sent; tell the client the way Anthropic does, then end.
        state["open_stream"] = False
        meter.fail(error.status, error.error_type)
        await send(
            {
                "type": "http.response.body",
                "body": sse_error_event(error.error_type, error.message),
                "more_body": True,
            }
        )
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    def note_json(payload: bytes, status: int, meter: Meter) -> None:
        if status != 200 and not payload.startswith(b"{"):
            meter.error_type = "api_error"
            return
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            if status != 200:
                meter.error_type = "api_error"
            return
        if not isinstance(data, dict):
            return
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
        response: aiohttp.ClientResponse,
        headers: list,
        meter: Meter,
        state: dict,
        send: Send,
        watcher: asyncio.Future | None,
    ) -> None:
        state["started"] = state["open_stream"] = True
        meter.status = 200
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        parser = StreamUsage()
        try:
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                parser.feed(chunk)
                if watcher is not None and watcher.done():
                    meter.fail(499, "client_disconnected")
                    break
        finally:
            meter.usage = parser.usage
            if parser.model:
                meter.model = parser.model
            if parser.service_tier:
                meter.service_tier = parser.service_tier
            if parser.error_type and meter.status == 200:
                meter.error_type = parser.error_type
        state["open_stream"] = False
        await send({"type": "http.response.body", "body": b""})


application = Gateway()
