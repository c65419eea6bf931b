"""Organizations: creating one, and its overview page."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse

from apikeys.models import KeyStatus
from apikeys.selectors import keys_visible_to, with_status
from billing import selectors as billing_selectors
from core.emails import absolute_url
from members import services as member_services
from members.access import org_view
from members.forms import add_service_errors
from members.policy import can, may_create_organizations
from members.selectors import admins_of, memberships_of, seats_of
from orgs.selectors import default_workspace
from usage import selectors as usage_selectors

from ..forms import OrganizationCreateForm


@login_required
def org_create(request):
    if not may_create_organizations(request.user):  # CONSOLE_SIGNUP=invite: operators only
        first = not memberships_of(request.user).exists()
        return render(request, "console/org_create_closed.html", {"first": first}, status=403)
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
    context = {"form": form, "first": first, "org_url_prefix": absolute_url("/o/")}
    return render(request, "console/org_create.html", context)


@org_view("org.view")
def org_home(request):
    organization = request.organization
    context = {
        "nav": "home",
        "default_workspace": default_workspace(organization),
        "seats": seats_of(organization),
        "workspace_count": organization.workspaces.filter(archived_at__isnull=True).count(),
        # The guide's "I can't invite a new member": say who can.
        "admins": [] if can(request.membership, "members.manage") else admins_of(organization),
        # Billing first for those whose job it is (finance), after the rest for Admins; a
        # Member sees their own keys' spend.
        "billing": billing_selectors.home_summary(request.membership),
        "billing_first": not can(request.membership, "members.manage"),
        # This month's usage: the organization's for Admins and Billing-only, a Member's keys'.
        "usage_month": usage_selectors.month_to_date(request.membership),
        "usage_scope": "organization" if can(request.membership, "usage.view_all") else "own",
    }
    if can(request.membership, "members.manage"):
        seats, billing = context["seats"], context["billing"]
        context["setup"] = production_setup(request.membership, seats, billing)
    return render(request, "console/org_home.html", context)


def production_setup(membership, seats, billing: dict) -> list[dict]:
    """The guide's "Setting Up a Production Environment", step by step, each with whether this
    organization has done it (for its Admins' home page)."""
    slug = membership.organization.slug
    active_keys = with_status(keys_visible_to(membership), KeyStatus.ACTIVE).count()
    limited = any(
        status.limit.enabled and status.limit.scope == "organization"
        for status in billing.get("statuses", ())
    )
    return [
        {"title": "Create an organization", "done": True,
         "text": "Your top-level container for members, keys and billing."},
        {"title": "Invite your team", "done": seats.members > 1 or seats.pending > 0,
         "text": "Developers as Members, your finance person as Billing-only.",
         "url": reverse("members:invite", args=[slug]), "action": "Invite member"},
        {"title": "Create scoped API keys", "done": active_keys > 0,
         "text": "Separate keys for Development, Production and Testing (CI/CD)"
                 f" · {active_keys} active now.",
         "url": reverse("apikeys:create", args=[slug]), "action": "Create Key"},
        {"title": "Set a spending limit", "done": limited,
         "text": "A monthly cap with email alerts, e.g. $1,000 with alerts at 50%, 80% and 90%.",
         "url": reverse("billing:limits", args=[slug]), "action": "Spending Limits"},
        {"title": "Monitor usage weekly", "done": None,
         "text": "Review the Usage dashboard every Monday and export its CSV for cost tracking.",
         "url": reverse("usage:overview", args=[slug]), "action": "Usage"},
    ]  # fmt: skip
