"""The usage import page (Admins): the Anthropic Admin API key from which usage that did not pass
through the gateway is imported, and how the import is doing (usage/anthropic_import.py)."""

import logging

from django.contrib import messages
from django.shortcuts import redirect, render

from members.access import org_view

from . import anthropic_import, tasks
from .forms import AnthropicAdminKeyForm
from .models import AnthropicUsageSource, ImportedName

logger = logging.getLogger(__name__)


def _queue_import(source_id: int) -> None:
    try:
        tasks.import_anthropic_usage_now.delay_on_commit(source_id)
    except Exception:  # a broker hiccup: the 15 minutes' beat imports it anyway
        logger.exception("Could not queue the usage import of %s", source_id)


@org_view("settings.manage")
def import_settings(request):
    organization = request.organization
    source = AnthropicUsageSource.objects.filter(organization=organization).first()
    form = AnthropicAdminKeyForm(request.POST if request.POST.get("action") == "save" else None)
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "save" and form.is_valid():
            source = anthropic_import.save_admin_key(
                organization=organization, api_key=form.cleaned_data["api_key"], actor=request.user
            )
            _queue_import(source.pk)
            messages.success(
                request,
                f"Admin API key …{source.key_last4} saved. The last 30 days of usage are being "
                "imported; this page shows when they arrive.",
            )
            return redirect("usage:import", organization.slug)
        if action == "import" and source is not None:
            _queue_import(source.pk)
            messages.success(request, "Import queued: usage up to now is pulled from Anthropic.")
            return redirect("usage:import", organization.slug)
        if action != "save":
            messages.error(request, "Nothing to do: save an Admin API key first.")
            return redirect("usage:import", organization.slug)
    names = ImportedName.objects.filter(organization=organization).order_by("kind", "name")
    context = {
        "nav": "usage",
        "form": form,
        "source": source,
        "imported_keys": [n for n in names if n.kind == ImportedName.Kind.API_KEY],
        "imported_workspaces": [n for n in names if n.kind == ImportedName.Kind.WORKSPACE],
    }
    return render(request, "usage/import.html", context)


@org_view("settings.manage")
def import_remove(request):
    organization = request.organization
    source = AnthropicUsageSource.objects.filter(organization=organization).first()
    if request.method == "POST" and source is not None:
        anthropic_import.remove_admin_key(source=source, actor=request.user)
        messages.success(request, "The Admin API key was removed; imported usage stays.")
        return redirect("usage:import", organization.slug)
    return render(request, "usage/import_remove.html", {"nav": "usage", "source": source})
