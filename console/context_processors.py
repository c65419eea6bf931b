from django.conf import settings
from django.urls import reverse

from members.policy import can, may_create_organizations
from members.selectors import memberships_of

# The guide's "Company" sidebar, plus Workspaces and the audit log: (key, label, url name,
# capability). An entry shows only when the role policy grants its capability.
SIDEBAR = [
    ("members", "Members", "members:list", "members.view"),
    ("apikeys", "API Keys", "apikeys:list", "apikeys.view"),
    ("billing", "Billing", "billing:overview", "billing.view"),
    ("usage", "Usage", "usage:overview", "usage.view"),
    ("settings", "Settings", "org_settings", "settings.view"),
    ("workspaces", "Workspaces", "workspaces", "workspaces.view"),
    ("audit", "Audit log", "audit_log", "audit.view"),
]


def sidebar_for(membership) -> list[dict]:
    slug = membership.organization.slug
    return [
        {"key": key, "label": label, "url": reverse(url_name, args=[slug])}
        for key, label, url_name, capability in SIDEBAR
        if can(membership, capability)
    ]


def shell(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    context = {
        "shell_memberships": memberships_of(user),
        "support_contact": settings.CONSOLE_SUPPORT_CONTACT,
        "may_create_organizations": may_create_organizations(user),
    }
    membership = getattr(request, "membership", None)
    if membership is not None:
        context["organization"] = membership.organization
        context["membership"] = membership
        context["shell_nav"] = sidebar_for(membership)
    return context
