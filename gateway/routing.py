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
from urllib.parse import urlparse

from django.conf import settings
from django.db.models import Q

from core.hotcache import HotCache

from . import crypto
from .models import UpstreamConfig, WorkspacePolicy

logger = logging.getLogger(__name__)

ROUTE_TTL = 5.0


@dataclass(frozen=True, slots=True)
class Upstream:
    base_url: str
    api_key: str
    timeout: float
    # The operator's default upstream (its key): GATEWAY_DEFAULT_UPSTREAM_MONTHLY_CAP applies.
    shared: bool = False

    def __repr__(self) -> str:  # never print the key
        return f"Upstream({self.base_url!r}, timeout={self.timeout})"


@dataclass(frozen=True, slots=True)
class Route:
    upstream: Upstream | None
    allowed_models: tuple[str, ...] = ()
    max_tokens_ceiling: int | None = None

    def allows(self, model: str) -> bool:
        return not self.allowed_models or model.startswith(self.allowed_models)


def host_allowed(base_url: str) -> bool:
    """Whether the console may forward to `base_url`'s host (settings.GATEWAY_UPSTREAM_HOSTS)."""
    allowed = set(settings.GATEWAY_UPSTREAM_HOSTS)
    if "*" in allowed:
        return True
    if settings.GATEWAY_DEFAULT_UPSTREAM_URL:
        allowed.add(urlparse(settings.GATEWAY_DEFAULT_UPSTREAM_URL).hostname)
    host = urlparse(base_url).hostname
    return host is not None and host.lower() in {h.lower() for h in allowed if h}


def default_upstream() -> Upstream | None:
    url = settings.GATEWAY_DEFAULT_UPSTREAM_URL
    key = settings.GATEWAY_DEFAULT_UPSTREAM_KEY
    if not url or not key:
        return None
    return Upstream(url.rstrip("/"), key, 600.0, shared=True)


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
    upstream = default_upstream()
    if config is not None and not host_allowed(config.base_url):
        # Saved before the operator narrowed GATEWAY_UPSTREAM_HOSTS: refused, not followed.
        logger.error("Upstream host of organization %s is not allowed", organization_id)
        upstream = None
    elif config is not None:
        try:
            upstream = Upstream(
                config.base_url.rstrip("/"),
                crypto.decrypt(config.api_key_encrypted),
                float(config.timeout_seconds),
            )
        except Exception:  # an undecryptable key (rotated away): refuse, don't fall back
            logger.error("Upstream key of organization %s cannot be decrypted", organization_id)
            upstream = None
    policy = (
        WorkspacePolicy.objects.filter(workspace_id=workspace_id).first() if workspace_id else None
    )
    if policy is None:
        return Route(upstream)
    return Route(upstream, tuple(policy.allowed_models or ()), policy.max_tokens_ceiling)


_routes = HotCache(load_route, ttl=ROUTE_TTL)


async def route_for(organization_id: int, workspace_id: int | None) -> Route:
    return await _routes.get((organization_id, workspace_id))


def forget_routes(organization_id: int | None = None) -> None:
    """Drop cached routes (of one organization, or all) in this process."""
    if organization_id is None:
        _routes.forget()
    else:
        _routes.forget(lambda key: key[0] == organization_id)
