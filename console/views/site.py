"""Pages outside any organization: the way in, the CSRF failure page (health: console/health.py)."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from members.access import LAST_ORG_SESSION_KEY
from members.selectors import admins_of, memberships_of


@login_required
def home(request):
    memberships = list(memberships_of(request.user))
    if not memberships:
        return redirect("org_create")
    last = request.session.get(LAST_ORG_SESSION_KEY)
    slugs = [m.organization.slug for m in memberships]
    return redirect("org_home", last if last in slugs else slugs[0])


@never_cache
def csrf_failure(request, reason=""):
    return render(request, "403_csrf.html", status=403)


def permission_denied(request, exception=None):
    """403 (handler403). Inside an organization the page keeps its shell (sidebar, organization)
    and says which role the user has and who can grant more: that organization's Admins."""
    membership = getattr(request, "membership", None)
    context = {"exception": str(exception or "")}
    if membership is not None:
        context.update(
            base_template="console/shell.html",
            admins=admins_of(membership.organization),
        )
    return render(request, "403.html", {"base_template": "base.html", **context}, status=403)
