"""The Admin API's lean ASGI app: `/v1/organizations/...` and `/v1/openapi.json`, dispatched
from console/asgi.py beside the gateway (docs/decisions/0016).

Each request's work (the key check, the endpoint, its database reads and writes) runs in a small
pool of threads of this process, so the event loop the gateway shares never waits on the
database, and each thread keeps its database connection between requests (CONN_MAX_AGE), as a
WSGI worker would. Django's ASGI handler instead gives every request a new thread, hence a new
connection: ~30 ms a request on the dev machine, and CPU taken from /v1/messages.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from django.conf import settings
from django.db import close_old_connections
from django.http import QueryDict

from audit.context import RequestOrigin
from core.client_ip import scope_client_ip

from . import api, openapi
from .errors import ApiError, error_body, new_request_id

MAX_BODY_BYTES = 1024 * 1024  # admin bodies are small JSON objects


@cache
def executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=settings.ADMIN_API_THREADS, thread_name_prefix="adminapi")


def shutdown() -> None:
    """Stop the threads (their database connections close with them)."""
    executor().shutdown(wait=True)
    executor.cache_clear()


def handle_in_thread(request: api.ApiRequest) -> tuple[int, bytes]:
    close_old_connections()  # what Django does at request start and end
    try:
        return api.handle(request)
    finally:
        close_old_connections()


async def read_body(receive) -> bytes | None:
    """The body, or None once it exceeds MAX_BODY_BYTES."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def respond(send, status: int, payload: bytes, request_id: str = "") -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(payload)),
    ]
    if request_id:
        headers.append((b"request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def application(scope, receive, send) -> None:
    path = scope["path"]
    if path == "/v1/openapi.json":
        if scope["method"] not in ("GET", "HEAD"):
            error = ApiError("not_found_error", f"{scope['method']} {path} not found.")
            await respond(send, error.status, error_body(error, ""))
        else:
            await respond(send, 200, openapi.document())
        return
    request_id = new_request_id()
    body = await read_body(receive)
    if body is None:
        error = ApiError("request_too_large", "The request body exceeds 1 MB.")
        await respond(send, error.status, error_body(error, request_id), request_id)
        return
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    request = api.ApiRequest(
        method=scope["method"],
        path=path,
        query=QueryDict(scope.get("query_string", b"").decode("latin-1")),
        headers=headers,
        body=body,
        origin=RequestOrigin(
            ip_address=scope_client_ip(scope), user_agent=headers.get("user-agent", "")[:512]
        ),
        request_id=request_id,
    )
    loop = asyncio.get_running_loop()
    status, payload = await loop.run_in_executor(executor(), handle_in_thread, request)
    await respond(send, status, payload, request_id)
