"""Writes for the gateway's configuration: upstream per organization (or workspace), workspace
policies. Each write records its audit event and drops this process's cached route."""

from __future__ import annotations

from urllib.parse import urlparse

import anthropic
from django.core.exceptions import ValidationError
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from audit.services import record_event
from orgs.models import Organization, Workspace

from . import crypto
from .models import UpstreamConfig, WorkspacePolicy
from .routing import forget_routes


def _summary(config: UpstreamConfig | None) -> dict | None:
    if config is None:
        return None
    return {
        "base_url": config.base_url,
        "key": f"…{config.api_key_last4}",
        "timeout_seconds": config.timeout_seconds,
        "workspace": config.workspace.name if config.workspace_id else "",
    }


def _check_base_url(base_url: str) -> str:
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValidationError({"base_url": "Use an http:// or https:// URL."})
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise ValidationError({"base_url": "Give the base URL only, without credentials."})
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
def set_workspace_policy(
    *,
    workspace: Workspace,
    allowed_models: list[str],
    max_tokens_ceiling: int | None,
    actor,
) -> WorkspacePolicy:
    policy, _ = WorkspacePolicy.objects.select_for_update().get_or_create(workspace=workspace)
    before = {"allowed_models": policy.allowed_models, "max_tokens": policy.max_tokens_ceiling}
    policy.allowed_models = sorted({m.strip() for m in allowed_models if m.strip()})
    policy.max_tokens_ceiling = max_tokens_ceiling
    policy.save()
    record_event(
        action="gateway.policy_changed",
        organization=workspace.organization,
        actor=actor,
        target=workspace,
        before=before,
        after={"allowed_models": policy.allowed_models, "max_tokens": max_tokens_ceiling},
    )
    transaction.on_commit(lambda: forget_routes(workspace.organization_id))
    return policy


@sensitive_variables("api_key")
def test_upstream_connection(*, base_url: str, api_key: str, timeout: float = 10.0) -> str:
    """List the upstream's models with the official SDK. Returns a summary; raises
    ValidationError with a readable reason when the upstream refuses or cannot be reached."""
    client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0,
                                 timeout=timeout)  # fmt: skip
    try:
        page = client.models.list(limit=100)
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
    finally:
        client.close()
    models = [m.id for m in page.data]
    return f"Connected: {len(models)} models available" + (
        f" (e.g. {', '.join(models[:3])})." if models else "."
    )
