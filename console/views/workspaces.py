"""Workspaces: the list, create, rename, archive and restore (Admins)."""

from functools import partial

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from apikeys.selectors import active_keys_in_workspace
from members.access import org_view
from members.confirm import confirm_then_run
from members.forms import add_service_errors
from members.listing import OrgTableView
from orgs import services as org_services
from orgs.filters import WorkspaceFilter
from orgs.models import Workspace
from orgs.selectors import workspaces_for_list
from orgs.tables import WorkspaceTable

from ..forms import WorkspaceForm


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
