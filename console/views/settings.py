"""The organization's settings page (Admins)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from core.emails import absolute_url
from members.access import org_view
from members.forms import add_service_errors
from members.selectors import seats_used
from orgs import services as org_services
from orgs.selectors import default_workspace

from ..forms import OrganizationSettingsForm


@org_view("settings.manage")
def org_settings(request):
    organization = request.organization
    form = OrganizationSettingsForm(
        request.POST or None,
        initial=OrganizationSettingsForm.initial_for(organization, default_workspace(organization)),
        organization=organization,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        old_slug = organization.slug
        try:
            organization = org_services.update_organization_settings(
                organization=organization,
                actor=request.user,
                name=data["name"],
                slug=data["slug"],
                require_mfa=data["require_mfa"],
                default_workspace=data["default_workspace"],
                timezone=data["timezone"],
                audit_logging=data["audit_logging"],
                usage_retention_months=data["usage_retention_months"],
                spike_factor=data["spike_factor"],
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            if organization.slug != old_slug:
                messages.success(
                    request,
                    f"Settings saved. The organization's address is now /o/{organization.slug}/; "
                    f"links to /o/{old_slug}/ redirect here.",
                )
            else:
                messages.success(request, "Settings saved.")
            return redirect("org_settings", organization.slug)
    context = {
        "form": form,
        "nav": "settings",
        "seats_used": seats_used(organization),
        "org_url_prefix": absolute_url("/o/"),
    }
    return render(request, "console/org_settings.html", context)
