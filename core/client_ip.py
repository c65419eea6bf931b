"""The client's address, behind the proxies the operator trusts (`TRUSTED_PROXY_COUNT`).

Each trusted proxy appends the address it received the connection from to X-Forwarded-For, so
with N trusted proxies the client is the N-th entry from the right; anything left of it was written
by the client and is not trusted. With no trusted proxies (the default) the header is ignored and
the connection's own address is the client's. Used for login rate limits (members.adapters, so
allauth agrees; allauth's own `ALLAUTH_TRUSTED_PROXY_COUNT` is set to the same count), audit rows
and the gateway's limit on unauthenticated traffic.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_ip(remote_addr: str | None, forwarded_for: str | None) -> str | None:
    """The client's address from the connection's `remote_addr` and the X-Forwarded-For value."""
    count = settings.TRUSTED_PROXY_COUNT
    if count > 0 and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",")]
        # Fewer entries than trusted proxies: it did not come through them all; trust none.
        if len(hops) >= count:
            found = _valid(hops[-count])
            if found is not None:
                return found
    return _valid(remote_addr) if remote_addr else None


def request_client_ip(request) -> str | None:
    """`client_ip` of a Django request."""
    return client_ip(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def scope_client_ip(scope) -> str | None:
    """`client_ip` of an ASGI request (the gateway)."""
    client = scope.get("client")
    remote = client[0] if client else None
    if settings.TRUSTED_PROXY_COUNT <= 0:
        return remote
    forwarded = [v for k, v in scope["headers"] if k == b"x-forwarded-for"]
    return client_ip(remote, b",".join(forwarded).decode("latin-1") if forwarded else None)


def _valid(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None
