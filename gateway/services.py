"""Writes for the gateway's configuration: upstream per organization (or workspace), workspace
policies. Each write records its audit event and drops this process's cached route."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from audit.services import record_event
from orgs.models import Organization, Workspace

from . import crypto, upstream_rules
from .models import UpstreamConfig, WorkspacePolicy
from .routing import forget_routes

logger = logging.getLogger(__name__)

NO_API_ANSWER = (
    "No Anthropic API answered at this address: nothing is listening there, it did not answer "
    "in time, or another service answered. Check the base URL."
)


def _summary(config: UpstreamConfig | None) -> dict | None:
    if config is None:
        return None
    return {
        "base_url": config.base_url,
        "key": f"…{config.api_key_last4}",
        "timeout_seconds": config.timeout_seconds,
        "workspace": config.workspace.name if config.workspace_id else "",
    }


def base_url_problem(base_url: str, *, own_urls=(), own_ports=()) -> str | None:
    """Why `base_url` may not be an upstream (gateway/upstream_rules.py), or None. `own_urls`
    and `own_ports` say where this console is reached, besides CONSOLE_BASE_URL."""
    problem = upstream_rules.origin_problem(base_url)
    if problem is None:
        problem = upstream_rules.own_address_problem(
            base_url,
            own_urls=[settings.CONSOLE_BASE_URL, *own_urls],
            own_ports=list(own_ports),
        )
    return problem


def api_key_problem(api_key: str) -> str | None:
    return upstream_rules.key_problem(api_key)


def _check_base_url(base_url: str) -> str:
    problem = base_url_problem(base_url)
    if problem:
        raise ValidationError({"base_url": problem})
    return upstream_rules.normalized(base_url)


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


def _anthropic_error(body) -> tuple[str, str] | None:
    """(type, message) of an answer in Anthropic's error shape, else None."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):  # the SDK may unwrap
        body = body["error"] if body.get("type") == "error" else body
    if not isinstance(body, dict):
        return None
    kind, message = body.get("type"), body.get("message")
    if isinstance(kind, str) and isinstance(message, str) and kind.endswith("_error"):
        return kind[:64], " ".join(message.split())[:300]
    return None


@sensitive_variables("api_key")
def test_upstream_connection(*, base_url: str, api_key: str, timeout: float = 10.0) -> str:
    """List the upstream's models with the official SDK. Returns a summary; raises
    ValidationError with a readable reason when the upstream refuses the key or answers with
    one of the API's errors. Anything else (nothing listening, no answer in time, a login page,
    another service's error) is one message, NO_API_ANSWER: an Admin must not be able to read
    internal pages or tell open ports from closed ones through this button."""
    # Imported here, not at the top: the SDK is ~80 MB and seconds of import, and this button is
    # its only user in a web process (decision 0019).
    import anthropic

    client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0,
                                 timeout=timeout)  # fmt: skip
    try:
        models = [m.id for m in client.models.list(limit=100).data]
    except anthropic.APIStatusError as exc:
        error = _anthropic_error(exc.body)
        if error is None:
            logger.info("Upstream test of %s: HTTP %s, not the API's", base_url, exc.status_code)
            raise ValidationError(NO_API_ANSWER) from None
        if isinstance(exc, anthropic.AuthenticationError):
            raise ValidationError(
                "The upstream refused the API key (authentication error)."
            ) from None
        if isinstance(exc, anthropic.PermissionDeniedError):
            raise ValidationError("The API key may not list models (permission error).") from None
        raise ValidationError(
            f"The upstream answered HTTP {exc.status_code} ({error[0]}): {error[1]}"
        ) from None
    except Exception as exc:  # no connection, a timeout, or a body that is not a models list
        logger.info("Upstream test of %s: no API answer (%s)", base_url, type(exc).__name__)
        raise ValidationError(NO_API_ANSWER) from None
    finally:
        client.close()
    return f"Connected: {len(models)} models available" + (
        f" (e.g. {', '.join(models[:3])})." if models else "."
    )
