"""Where a change came from (IP address, user agent), kept for the duration of one request.

Services record audit events without being handed the request: the middleware below puts the
origin in a context variable, which works the same for sync and async views.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from core.client_ip import request_client_ip


@dataclass(frozen=True)
class RequestOrigin:
    ip_address: str | None
    user_agent: str


_current_origin: ContextVar[RequestOrigin | None] = ContextVar("audit_origin", default=None)


def current_origin() -> RequestOrigin | None:
    return _current_origin.get()


def origin_from_request(request) -> RequestOrigin:
    return RequestOrigin(
        ip_address=request_client_ip(request),  # behind trusted proxies, the client's
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
    )


@contextmanager
def request_origin(origin: RequestOrigin):
    """The origin of a request served outside Django's middleware (the Admin API)."""
    token = _current_origin.set(origin)
    try:
        yield
    finally:
        _current_origin.reset(token)


class AuditOriginMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current_origin.set(origin_from_request(request))
        try:
            return self.get_response(request)
        finally:
            _current_origin.reset(token)


# How the actor acted when it was not through the browser, e.g. "admin key CI (cak_AbCd…wxyz)":
# the Admin API sets it for its request, and audit rows name the key beside its owner.
_current_via: ContextVar[str] = ContextVar("audit_via", default="")


def current_via() -> str:
    return _current_via.get()


@contextmanager
def acting_via(label: str):
    token = _current_via.set(label)
    try:
        yield
    finally:
        _current_via.reset(token)
