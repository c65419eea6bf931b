"""Writes for the gateway's configuration: upstream per organization (or workspace), workspace
policies. Each write records its audit event and drops this process's cached route."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlparse

import anthropic
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from audit.services import record_event
from orgs.models import Organization, Workspace

from . import crypto
from .models import UpstreamConfig, WorkspacePolicy
from .routing import forget_routes, host_allowed

logger = logging.getLogger(__name__)

NOT_THE_ANTHROPIC_API = "The upstream's answer is not the Anthropic API's."


def _summary(config: UpstreamConfig | None) -> dict | None:
    if config is None:
        return None
    return {
        "base_url": config.base_url,
        "key": f"…{config.api_key_last4}",
        "timeout_seconds": config.timeout_seconds,
        "workspace": config.workspace.name if config.workspace_id else "",
    }


# Printable ASCII without spaces: what an HTTP header value (the key) or a URL may carry as is.
PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")


def base_url_problem(base_url: str) -> str | None:
    """Why `base_url` is not http(s)://host[:port][/path], or None."""
    if not PRINTABLE_ASCII.fullmatch(base_url):
        return "Use an http:// or https:// URL of ASCII characters, without spaces."
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return "Use an http:// or https:// URL."
    if "?" in base_url or "#" in base_url or "@" in parsed.netloc:
        return "Give the base URL only: no query, fragment or credentials."
    try:
        port = parsed.port
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
    return None


def api_key_problem(api_key: str) -> str | None:
    if not PRINTABLE_ASCII.fullmatch(api_key):
        return (
            "An API key has only printable ASCII characters and no spaces: check what was pasted."
        )
    return None


def _check_base_url(base_url: str) -> str:
    problem = base_url_problem(base_url)
    if problem:
        raise ValidationError({"base_url": problem})
    return base_url.rstrip("/")


@sensitive_variables("api_key")
@transaction.atomic
def configure_upstream(
    *,
    organization: Organization,
    workspace: Workspace | None = None,
    base_url: str,
    api_key: str | None,
    timeout_seconds: int = 600,
    actor,
) -> UpstreamConfig:
    """Create or update the upstream; `api_key=None` keeps the stored key."""
    if workspace is not None and workspace.organization_id != organization.pk:
        raise ValidationError({"workspace": "Choose a workspace of this organization."})
    base_url = _check_base_url(base_url)
    config = (
        UpstreamConfig.objects.select_for_update()
        .filter(organization=organization, workspace=workspace)
        .first()
    )
    before = _summary(config)
    api_key = (api_key or "").strip() or None
    if api_key is not None and (problem := api_key_problem(api_key)):
        raise ValidationError({"api_key": problem})
    if config is None:
        if api_key is None:
            raise ValidationError({"api_key": "Enter the Anthropic API key."})
        config = UpstreamConfig(organization=organization, workspace=workspace)
    if api_key is not None:
        config.api_key_encrypted = crypto.encrypt(api_key)
        config.api_key_last4 = api_key[-4:]
    config.base_url = base_url
    config.timeout_seconds = timeout_seconds
    config.full_clean()
    config.save()
    record_event(
        action="gateway.upstream_changed",
        organization=organization,
        actor=actor,
        target=config,
        before=before,
        after=_summary(config),
    )
    transaction.on_commit(lambda: forget_routes(organization.pk))
    return config


@transaction.atomic
def remove_upstream(*, config: UpstreamConfig, actor) -> None:
    organization = config.organization
    before = _summary(config)
    record_event(
        action="gateway.upstream_removed",
        organization=organization,
        actor=actor,
        target=config,
        before=before,
    )
    config.delete()
    transaction.on_commit(lambda: forget_routes(organization.pk))


@transaction.atomic
def remove_workspace_override(*, workspace: Workspace, actor) -> None:
    """Send the workspace's keys back to the organization's upstream. Refused in words when
    there is no override (removed meanwhile, e.g. from another tab)."""
    config = (
        UpstreamConfig.objects.select_for_update()
        .filter(organization_id=workspace.organization_id, workspace=workspace)
        .first()
    )
    if config is None:
        raise ValidationError(f"{workspace.name} has no upstream override: nothing to remove.")
    remove_upstream(config=config, actor=actor)


@transaction.atomic
def set_workspace_policy(
    *,
    workspace: Workspace,
    allowed_models: list[str],
    max_tokens_ceiling: int | None,
    actor,
) -> bool:
    """Set the workspace's gateway rules. Returns False, writing nothing (no audit event
    either), when they are the ones in force."""
    # Lock the workspace row: concurrent saves take turns, so `before` is the rules in force
    # and only one of them creates the policy row.
    list(Workspace.objects.select_for_update().filter(pk=workspace.pk).values_list("pk"))
    policy = WorkspacePolicy.objects.filter(workspace=workspace).first()
    before = {
        "allowed_models": policy.allowed_models if policy else [],
        "max_tokens": policy.max_tokens_ceiling if policy else None,
    }
    after = {
        "allowed_models": sorted({m.strip() for m in allowed_models if m.strip()}),
        "max_tokens": max_tokens_ceiling,
    }
    if after == before:
        return False
    if policy is None:
        policy = WorkspacePolicy(workspace=workspace)
    policy.allowed_models = after["allowed_models"]
    policy.max_tokens_ceiling = max_tokens_ceiling
    policy.save()
    record_event(
        action="gateway.policy_changed",
        organization=workspace.organization,
        actor=actor,
        target=workspace,
        before=before,
        after=after,
    )
    transaction.on_commit(lambda: forget_routes(workspace.organization_id))
    return True


@sensitive_variables("api_key")
def test_upstream_connection(*, base_url: str, api_key: str, timeout: float = 10.0) -> str:
    """List the upstream's models with the official SDK. Returns a summary; raises
    ValidationError with a readable reason when the upstream refuses, cannot be reached, or
    answers with something that is not the Anthropic API (a login page, a proxy's error)."""
    client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0,
                                 timeout=timeout)  # fmt: skip
    try:
        models = [m.id for m in client.models.list(limit=100).data]
    except anthropic.AuthenticationError:
        raise ValidationError("The upstream refused the API key (authentication error).") from None
    except anthropic.PermissionDeniedError:
        raise ValidationError("The API key may not list models (permission error).") from None
    except anthropic.APIStatusError as exc:
        raise ValidationError(
            f"The upstream answered HTTP {exc.status_code}: {exc.message}"
        ) from None
    except anthropic.APITimeoutError:
        raise ValidationError(f"The upstream did not answer within {timeout:g} s.") from None
    except anthropic.APIConnectionError:
        raise ValidationError(f"Could not connect to {base_url}.") from None
    except Exception as exc:  # anthropic.APIError or a body the SDK could not read as models
        logger.info("Upstream test of %s: unexpected answer (%s)", base_url, type(exc).__name__)
        raise ValidationError(NOT_THE_ANTHROPIC_API) from None
    finally:
        client.close()
    return f"Connected: {len(models)} models available" + (
        f" (e.g. {', '.join(models[:3])})." if models else "."
    )
