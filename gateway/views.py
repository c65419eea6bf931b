from functools import partial

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from members.access import org_view
from members.confirm import confirm_then_run
from members.forms import add_service_errors
from members.reauth import sensitive_secret_form
from orgs.models import Workspace

from . import crypto, selectors, services
from .forms import UpstreamForm, WorkspacePolicyForm
from .models import UpstreamConfig, WorkspacePolicy
from .routing import default_upstream
from .upstream_rules import request_own_address


def _save_upstream(request, form, *, workspace=None):
    try:
        services.configure_upstream(
            organization=request.organization,
            workspace=workspace,
            base_url=form.cleaned_data["base_url"],
            api_key=form.cleaned_data["api_key"] or None,
            timeout_seconds=form.cleaned_data["timeout_seconds"],
            actor=request.user,
        )
    except ValidationError as error:
        add_service_errors(form, error)
        return False
    return True


def _test_connection(request, form, config):
    """Test with the key typed in the form, else the stored one."""
    key = form.cleaned_data["api_key"] or (
        crypto.decrypt(config.api_key_encrypted) if config is not None else ""
    )
    if not key:
        form.add_error("api_key", "Enter a key to test, or save one first.")
        return
    try:
        result = services.test_upstream_connection(
            base_url=form.cleaned_data["base_url"], api_key=key, timeout=10.0
        )
    except ValidationError as error:
        messages.error(request, f"Connection failed: {' '.join(error.messages)}")
    else:
        messages.success(request, result)


@org_view("settings.manage")
@sensitive_secret_form
def upstream_settings(request):
    organization = request.organization
    config = UpstreamConfig.objects.filter(organization=organization, workspace=None).first()
    initial = (
        {"base_url": config.base_url, "timeout_seconds": config.timeout_seconds} if config else None
    )
    form = UpstreamForm(
        request.POST or None, initial=initial, own_address=request_own_address(request)
    )
    if request.method == "POST" and form.is_valid():
        if request.POST.get("action") == "test":
            _test_connection(request, form, config)
        elif _save_upstream(request, form):
            messages.success(request, "Upstream saved.")
            return redirect("gateway:upstream", organization.slug)
    workspaces = Workspace.objects.filter(organization=organization, archived_at__isnull=True)
    overrides = {c.workspace_id: c for c in selectors.upstream_configs(organization)}
    policies = selectors.workspace_policies(organization)
    rows = [(w, overrides.get(w.pk), policies.get(w.pk)) for w in workspaces]
    default = default_upstream()
    return render(
        request,
        "gateway/upstream_settings.html",
        {
            "nav": "settings",
            "form": form,
            "config": config,
            "workspace_rows": rows,
            "default_base_url": default.base_url if default else "",
            "in_effect": selectors.upstream_in_effect(organization),
        },
    )


@org_view("settings.manage")
@sensitive_secret_form
def workspace_gateway(request, workspace_id):
    organization = request.organization
    workspace = get_object_or_404(Workspace, pk=workspace_id, organization=organization)
    policy = WorkspacePolicy.objects.filter(workspace=workspace).first()
    override = UpstreamConfig.objects.filter(organization=organization, workspace=workspace).first()
    policy_form = WorkspacePolicyForm(
        request.POST if request.POST.get("action") == "policy" else None,
        initial={
            "allowed_models": "\n".join(policy.allowed_models) if policy else "",
            "max_tokens_ceiling": policy.max_tokens_ceiling if policy else None,
        },
        prefix="policy",
    )
    upstream_form = UpstreamForm(
        request.POST if request.POST.get("action") in ("override", "test") else None,
        initial=(
            {"base_url": override.base_url, "timeout_seconds": override.timeout_seconds}
            if override
            else None
        ),
        prefix="upstream",
        own_address=request_own_address(request),
    )
    action = request.POST.get("action")
    if request.method == "POST":
        if action == "policy" and policy_form.is_valid():
            changed = services.set_workspace_policy(
                workspace=workspace,
                allowed_models=policy_form.cleaned_data["allowed_models"],
                max_tokens_ceiling=policy_form.cleaned_data["max_tokens_ceiling"],
                actor=request.user,
            )
            if changed:
                messages.success(request, f"Gateway policy of {workspace.name} saved.")
            else:
                messages.info(request, f"Gateway policy of {workspace.name} unchanged.")
            return redirect("gateway:workspace", organization.slug, workspace.pk)
        saved = action == "override" and upstream_form.is_valid()
        if saved and _save_upstream(request, upstream_form, workspace=workspace):
            messages.success(request, f"Upstream of {workspace.name} saved.")
            return redirect("gateway:workspace", organization.slug, workspace.pk)
        if action == "test" and upstream_form.is_valid():
            _test_connection(request, upstream_form, override)
    return render(
        request,
        "gateway/workspace_gateway.html",
        {
            "nav": "settings",
            "workspace": workspace,
            "policy_form": policy_form,
            "upstream_form": upstream_form,
            "override": override,
        },
    )


@org_view("settings.manage")
def workspace_override_remove(request, workspace_id):
    organization = request.organization
    workspace = get_object_or_404(Workspace, pk=workspace_id, organization=organization)
    return confirm_then_run(
        request,
        run=partial(services.remove_workspace_override, workspace=workspace, actor=request.user),
        success=f"{workspace.name} now uses the organization's upstream.",
        done_url=reverse("gateway:workspace", args=[organization.slug, workspace.pk]),
        template="gateway/override_remove.html",
        context={
            "nav": "settings",
            "workspace": workspace,
            "override": UpstreamConfig.objects.filter(
                organization=organization, workspace=workspace
            ).first(),
        },
    )
