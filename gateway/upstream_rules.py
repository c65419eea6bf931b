"""Where the gateway may send an organization's requests, and with which key.

The rules hold twice: when an upstream is saved (gateway/forms.py and services.py say what is
wrong) and when a request would follow a stored one (routing refuses it, so a configuration saved
before a rule existed, or written behind the services' back, is not followed but kept):

- **An origin**: `http(s)://host[:port]`, nothing else: no path, query, fragment or credentials,
  so a base URL cannot steer the organization's key to another endpoint of an allowed host
  (`http://host/accounts/login` read internal pages back before).
- **https**, except for the hosts the operator lists as local (`GATEWAY_LOCAL_UPSTREAM_HOSTS`).
- **An allowed host** (`GATEWAY_UPSTREAM_HOSTS`, plus the default upstream's host).
- **Not a console**: not this console's own address, and not a console key (`csk_…`, `cak_…`) as
  the upstream key; every request the gateway forwards carries `HOP_HEADER`, and a request that
  arrives with it is refused, so even a console behind another name cannot make one request
  recurse (docs/decisions/0009).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from django.conf import settings

from apikeys.keyformat import ADMIN_PREFIX, PREFIX

HOP_HEADER = "console-hop"
HOP_HEADER_BYTES = HOP_HEADER.encode()
CONSOLE_KEY_PREFIXES = (PREFIX, ADMIN_PREFIX)
DEFAULT_PORTS = {"http": 80, "https": 443}

# Printable ASCII without spaces: what an HTTP header value (the key) or a URL may carry as is.
PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")

ORIGIN_ONLY = (
    "Give the upstream's origin: scheme, host and port only (https://api.anthropic.com), "
    "without a path, query or credentials."
)
OWN_ADDRESS = (
    "That is this console's own address: the upstream must be Anthropic's API (or a compatible "
    "service), not a console."
)
CONSOLE_KEY = (
    "That is a console key: the upstream key must be an Anthropic API key (sk-ant-…), not a key "
    "of this or another console."
)
HOP_REFUSED = (
    "This request was forwarded by a console's gateway: a console cannot be the upstream of a "
    "console. Set the upstream base URL to Anthropic's API."
)


def host_allowed(base_url: str) -> bool:
    """Whether the console may forward to `base_url`'s host (settings.GATEWAY_UPSTREAM_HOSTS)."""
    allowed = set(settings.GATEWAY_UPSTREAM_HOSTS)
    if "*" in allowed:
        return True
    if settings.GATEWAY_DEFAULT_UPSTREAM_URL:
        allowed.add(urlsplit(settings.GATEWAY_DEFAULT_UPSTREAM_URL).hostname)
    host = urlsplit(base_url).hostname
    return host is not None and host.lower() in {h.lower() for h in allowed if h}


def is_local_host(host: str | None) -> bool:
    """A host the operator lists as local (GATEWAY_LOCAL_UPSTREAM_HOSTS): plain http allowed."""
    local = {h.lower() for h in settings.GATEWAY_LOCAL_UPSTREAM_HOSTS}
    return host is not None and host.lower() in local


def normalized(base_url: str) -> str:
    """The base URL as stored: without the trailing slash an origin may be written with."""
    return base_url.rstrip("/")


def origin_problem(base_url: str) -> str | None:
    """Why `base_url` is not an origin the console may forward to, or None."""
    if not PRINTABLE_ASCII.fullmatch(base_url):
        return "Use an https:// URL of ASCII characters, without spaces."
    parts = urlsplit(base_url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return "Use an https:// URL."
    if parts.path not in ("", "/") or "?" in base_url or "#" in base_url or "@" in parts.netloc:
        return ORIGIN_ONLY
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = 0
    if port is not None and not 1 <= port <= 65535:
        return "The port must be a number from 1 to 65535."
    if not host_allowed(base_url):
        hosts = ", ".join(settings.GATEWAY_UPSTREAM_HOSTS) or "its default upstream"
        return (
            f"This console forwards only to {hosts}. Its operator can allow more hosts "
            "(GATEWAY_UPSTREAM_HOSTS)."
        )
    if parts.scheme == "http" and not is_local_host(parts.hostname):
        return (
            "Use https://. Plain http is only for hosts the console's operator lists as local "
            "(GATEWAY_LOCAL_UPSTREAM_HOSTS)."
        )
    return None


def key_problem(api_key: str) -> str | None:
    if not PRINTABLE_ASCII.fullmatch(api_key):
        return (
            "An API key has only printable ASCII characters and no spaces: check what was pasted."
        )
    if api_key.startswith(CONSOLE_KEY_PREFIXES):
        return CONSOLE_KEY
    return None


# -- this console's own address ---------------------------------------------------------------

Address = tuple[str, int]  # (IP address, port)


def host_and_port(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname.lower(), port


def resolve(host: str, port: int) -> frozenset[Address]:
    """The addresses `host` resolves to (empty if it does not): blocking, call it off the loop."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return frozenset()
    return frozenset((_plain_ip(info[4][0]), port) for info in found)


def _plain_ip(ip: str) -> str:
    return ip.split("%", 1)[0]  # an IPv6 zone index


def is_this_machine(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified or ip in _machine_ips()


_machine_ip_cache: frozenset[str] | None = None


def _machine_ips() -> frozenset[str]:
    global _machine_ip_cache
    if _machine_ip_cache is None:
        _machine_ip_cache = frozenset(ip for ip, _ in resolve(socket.gethostname(), 0))
    return _machine_ip_cache


def points_at(addresses: frozenset[Address], own: Address) -> bool:
    """Whether an upstream resolving to `addresses` reaches a server listening at `own` (an
    (IP, port) this console accepted a connection on): the same address, or the same port on an
    address of this machine (a server bound to all interfaces answers on each)."""
    own_ip, own_port = _plain_ip(own[0]), own[1]
    if own_ip and (own_ip, own_port) in addresses:
        return True
    return any(port == own_port and is_this_machine(ip) for ip, port in addresses)


def own_address_problem(base_url: str, *, own_urls: list[str], own_ports: list[int]) -> str | None:
    """OWN_ADDRESS if `base_url` names or resolves to this console: one of `own_urls` (the
    console's public address, the address a page was served from) or a port of `own_ports` it
    listens on, on this machine. Resolves names: blocking, for a form or a service."""
    target = host_and_port(base_url)
    if target is None:
        return None
    addresses = resolve(*target)
    for url in own_urls:
        own = host_and_port(url)
        if own is None:
            continue
        if own == target or (addresses & resolve(*own)):
            return OWN_ADDRESS
    if any(points_at(addresses, ("", port)) for port in own_ports):
        return OWN_ADDRESS
    return None


def request_own_address(request) -> tuple[list[str], list[int]]:
    """What a Django request tells of this console's address: the URLs it is reached by (this
    request's, CONSOLE_BASE_URL) and the port it listens on."""
    urls = [settings.CONSOLE_BASE_URL, request.build_absolute_uri("/")]
    port = request.META.get("SERVER_PORT", "")
    return urls, [int(port)] if str(port).isdigit() else []
