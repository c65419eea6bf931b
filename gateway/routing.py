"""What the gateway needs per workspace, cached in the process: the upstream (decrypted key,
base URL, timeout) and the workspace policy (model allow-list, max_tokens ceiling).

`await route_for(organization_id, workspace_id)` answers from memory (core.hotcache: a miss loads
both rows in asgiref's thread, never on the event loop; an entry older than `ROUTE_TTL` is served
while one background reload runs). Changes made through gateway/services.py are dropped from this
process's cache at once; other processes see them within about `ROUTE_TTL`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from core.hotcache import HotCache

from . import crypto, upstream_rules
from .models import UpstreamConfig, WorkspacePolicy
from .upstream_rules import host_allowed  # noqa: F401  (where it was first, for callers)

logger = logging.getLogger(__name__)

ROUTE_TTL = 5.0


@dataclass(frozen=True, slots=True)
class Upstream:
    base_url: str
    api_key: str
    timeout: float
    # The operator's default upstream (its key): GATEWAY_DEFAULT_UPSTREAM_MONTHLY_CAP applies.
    shared: bool = False
    # What the base URL's host resolved to when the route was loaded, and the ports among them
    # on this machine: compared with the address a request arrived on (`reaches`), so the
    # gateway does not forward to itself.
    addresses: frozenset[upstream_rules.Address] = frozenset()
    local_ports: frozenset[int] = frozenset()

    def __repr__(self) -> str:  # never print the key
        return f"Upstream({self.base_url!r}, timeout={self.timeout})"

    def reaches(self, server: tuple[str, int] | None) -> bool:
        """Whether this upstream is the server a request arrived at (ASGI `scope["server"]`)."""
        return server is not None and (
            server[1] in self.local_ports or (server[0], server[1]) in self.addresses
        )


NO_UPSTREAM = (
    "No usable upstream is configured for this organization: an Admin can set the Anthropic API "
    "key (and base URL) in the console under Settings → Upstream."
)


@dataclass(frozen=True, slots=True)
class Route:
    upstream: Upstream | None
    allowed_models: tuple[str, ...] = ()
    max_tokens_ceiling: int | None = None
    problem: str = NO_UPSTREAM  # why there is no upstream, for the refusal

    def allows(self, model: str) -> bool:
        return not self.allowed_models or model.startswith(self.allowed_models)


def _upstream(base_url: str, api_key: str, timeout: float, *, shared: bool = False) -> Upstream:
    target = upstream_rules.host_and_port(base_url)
    addresses = upstream_rules.resolve(*target) if target else frozenset()
    local_ports = frozenset(port for ip, port in addresses if upstream_rules.is_this_machine(ip))
    return Upstream(base_url.rstrip("/"), api_key, timeout, shared, addresses, local_ports)


def default_upstream() -> Upstream | None:
    url = settings.GATEWAY_DEFAULT_UPSTREAM_URL
    key = settings.GATEWAY_DEFAULT_UPSTREAM_KEY
    if not url or not key:
        return None
    return Upstream(url.rstrip("/"), key, 600.0, shared=True)


def _stored_problem(config: UpstreamConfig, api_key: str) -> str | None:
    """Why a stored upstream is not followed: saved before a rule existed, or behind the
    services' back (it stays stored, for an Admin to fix)."""
    problem = upstream_rules.origin_problem(config.base_url) or upstream_rules.key_problem(api_key)
    if problem is None:
        own = upstream_rules.host_and_port(settings.CONSOLE_BASE_URL)
        if own is not None and upstream_rules.host_and_port(config.base_url) == own:
            problem = upstream_rules.OWN_ADDRESS
    return problem


def load_route(organization_id: int, workspace_id: int | None) -> Route:
    scope = (
        Q(workspace__isnull=True) | Q(workspace_id=workspace_id)
        if workspace_id
        else Q(workspace__isnull=True)
    )
    configs = {
        c.workspace_id: c
        for c in UpstreamConfig.objects.filter(scope, organization_id=organization_id)
    }
    config = configs.get(workspace_id) or configs.get(None)
    upstream = None
    problem = NO_UPSTREAM
    if config is None:
        upstream = default_upstream()
        if upstream is not None and upstream_rules.key_problem(upstream.api_key):
            logger.error("GATEWAY_DEFAULT_UPSTREAM_KEY is a console key: not followed")
            upstream = None
        elif upstream is not None:
            upstream = _upstream(
                upstream.base_url, upstream.api_key, upstream.timeout, shared=upstream.shared
            )
    else:
        try:
            api_key = crypto.decrypt(config.api_key_encrypted)
        except Exception:  # an undecryptable key (rotated away): refuse, don't fall back
            logger.error("Upstream key of organization %s cannot be decrypted", organization_id)
            api_key = None
        stored_problem = _stored_problem(config, api_key) if api_key is not None else None
        if stored_problem is not None:
            logger.error("Upstream of organization %s is not followed: %s", organization_id,
                         stored_problem)  # fmt: skip
            problem = f"{NO_UPSTREAM} The stored base URL or key is refused: {stored_problem}"
        elif api_key is not None:
            upstream = _upstream(config.base_url, api_key, float(config.timeout_seconds))
    policy = (
        WorkspacePolicy.objects.filter(workspace_id=workspace_id).first() if workspace_id else None
    )
    if policy is None:
        return Route(upstream, problem=problem)
    return Route(
        upstream, tuple(policy.allowed_models or ()), policy.max_tokens_ceiling, problem=problem
    )


_routes = HotCache(load_route, ttl=ROUTE_TTL)


async def route_for(organization_id: int, workspace_id: int | None) -> Route:
    return await _routes.get((organization_id, workspace_id))


def forget_routes(organization_id: int | None = None) -> None:
    """Drop cached routes (of one organization, or all) in this process."""
    if organization_id is None:
        _routes.forget()
    else:
        _routes.forget(lambda key: key[0] == organization_id)
