"""The shell: home, organization creation and switching, the org overview, settings, workspaces
and the audit log. Org-scoped views go through the role policy via `org_view`/`OrgViewMixin`."""

from functools import partial

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apikeys.selectors import active_keys_in_workspace
from audit.filters import AuditEventFilter
from audit.selectors import events_for_organization
from audit.tables import AuditEventTable
from members import services as member_services
from members.access import LAST_ORG_SESSION_KEY, org_view
from members.confirm import confirm_then_run
from members.forms import add_service_errors
from members.listing import OrgTableView
from members.models import Membership
from members.policy import can
from members.selectors import admins_of, memberships_of
from orgs import services as org_services
from orgs.filters import WorkspaceFilter
from orgs.models import Workspace
from orgs.selectors import default_workspace, workspaces_for_list
from orgs.tables import WorkspaceTable

from .forms import OrganizationCreateForm, OrganizationSettingsForm, WorkspaceForm


@require_GET
def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")


@login_required
def home(request):
    memberships = list(memberships_of(request.user))
    if not memberships:
        return redirect("org_create")
    last = request.session.get(LAST_ORG_SESSION_KEY)
    slugs = [m.organization.slug for m in memberships]
    return redirect("org_home", last if last in slugs else slugs[0])


@login_required
def org_create(request):
    form = OrganizationCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = member_services.create_organization(
                user=request.user, name=form.cleaned_data["name"], slug=form.cleaned_data["slug"]
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"{organization.name} is ready. You are its Admin.")
            return redirect("org_home", organization.slug)
    first = not memberships_of(request.user).exists()
    return render(request, "console/org_create.html", {"form": form, "first": first})


@org_view("org.view")
def org_home(request):
    organization = request.organization
    context = {
        "nav": "home",
        "default_workspace": default_workspace(organization),
        "member_count": Membership.objects.filter(organization=organization).count(),
        "workspace_count": organization.workspaces.filter(archived_at__isnull=True).count(),
        # The guide's "I can't invite a new member": say who can.
        "admins": [] if can(request.membership, "members.manage") else admins_of(organization),
    }
    return render(request, "console/org_home.html", context)


@org_view("settings.manage")
def org_settings(request):
    organization = request.organization
    initial = {
        "name": organization.name,
        "slug": organization.slug,
        "require_mfa": organization.require_mfa,
        "default_workspace": default_workspace(organization),
    }
    form = OrganizationSettingsForm(
        request.POST or None, initial=initial, organization=organization
    )
    if request.method == "POST" and form.is_valid():
        try:
            organization = org_services.update_organization_settings(
                organization=organization,
                actor=request.user,
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"],
                require_mfa=form.cleaned_data["require_mfa"],
                default_workspace=form.cleaned_data["default_workspace"],
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, "Settings saved.")
            return redirect("org_settings", organization.slug)
    return render(
        request,
        "console/org_settings.html",
        {"form": form, "nav": "settings", "member_limit": organization.member_limit},
    )


class WorkspaceListView(OrgTableView):
    capability = "workspaces.view"
    table_class = WorkspaceTable
    filterset_class = WorkspaceFilter
    template_name = "console/workspace_list.html"
    export_name = "workspaces"

    def get_queryset(self):
        return workspaces_for_list(self.organization)

    def get_context_data(self, **kwargs):
        return super().get_context_data(nav="workspaces", form=WorkspaceForm(), **kwargs)


def _workspace(request, workspace_id: int) -> Workspace:
    return get_object_or_404(Workspace, pk=workspace_id, organization=request.organization)


@org_view("workspaces.manage")
def workspace_create(request):
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workspace = org_services.create_workspace(
                organization=request.organization,
                actor=request.user,
                name=form.cleaned_data["name"],
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Workspace {workspace.name} created.")
            return redirect("workspaces", request.organization.slug)
    return render(
        request, "console/workspace_form.html", {"form": form, "nav": "workspaces", "new": True}
    )


@org_view("workspaces.manage")
def workspace_rename(request, workspace_id: int):
    workspace = _workspace(request, workspace_id)
    form = WorkspaceForm(request.POST or None, initial={"name": workspace.name})
    if request.method == "POST" and form.is_valid():
        try:
            org_services.rename_workspace(
                workspace=workspace, actor=request.user, name=form.cleaned_data["name"]
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, "Workspace renamed.")
            return redirect("workspaces", request.organization.slug)
    return render(
        request,
        "console/workspace_form.html",
        {"form": form, "nav": "workspaces", "workspace": workspace},
    )


def _archived_message(archived: org_services.ArchivedWorkspace) -> str:
    revoked = archived.api_keys_revoked
    if not revoked:
        return f"Workspace {archived.workspace.name} archived. No active API keys needed revoking."
    keys = "API key" if revoked == 1 else "API keys"
    return f"Workspace {archived.workspace.name} archived. {revoked} {keys} revoked."


ARCHIVE, RESTORE = "archive", "restore"


def _stale_intent_message(workspace: Workspace, intent: str | None) -> str:
    if intent == ARCHIVE:
        return f"Workspace {workspace.name} is already archived. Nothing changed."
    if intent == RESTORE:
        return f"Workspace {workspace.name} is not archived. Nothing changed."
    return "Nothing changed: the form did not say whether to archive or restore. Try again."


@org_view("workspaces.manage")
def workspace_archive(request, workspace_id: int):
    """Archive or restore, as the form says (`intent`): never a toggle, so a second click or a
    page left open since the state changed cannot undo what someone just did."""
    workspace = _workspace(request, workspace_id)
    done_url = reverse("workspaces", args=[request.organization.slug])
    allowed = RESTORE if workspace.is_archived else ARCHIVE
    if request.method == "POST":
        intent = request.POST.get("intent")
    else:  # the list's links say what they offer; a bare URL asks for what the state allows
        intent = request.GET.get("intent") or allowed
    if intent != allowed:
        messages.warning(request, _stale_intent_message(workspace, intent))
        return redirect(done_url)
    context = {"workspace": workspace, "intent": intent, "nav": "workspaces"}
    if intent == RESTORE:
        run = partial(org_services.unarchive_workspace, workspace=workspace, actor=request.user)
        success = f"Workspace {workspace.name} restored."
    else:
        run = partial(org_services.archive_workspace, workspace=workspace, actor=request.user)
        success = _archived_message
        # Said before the Admin confirms: archiving ends these keys.
        context["active_keys"] = active_keys_in_workspace(workspace).count()
    return confirm_then_run(
        request,
        run=run,
        success=success,
        done_url=done_url,
        template="console/workspace_archive.html",
        context=context,
    )


class AuditLogView(OrgTableView):
    capability = "audit.view"
    table_class = AuditEventTable
    filterset_class = AuditEventFilter
    template_name = "console/audit_log.html"
    export_name = "audit-log"

    def get_queryset(self):
        return events_for_organization(self.organization)

    def get_context_data(self, **kwargs):
        return super().get_context_data(nav="audit", **kwargs)


@never_cache
def csrf_failure(request, reason=""):
    return render(request, "403_csrf.html", status=403)
