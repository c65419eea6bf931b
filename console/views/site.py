"""Pages outside any organization: the way in, the CSRF failure page (health: console/health.py)."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from members.access import LAST_ORG_SESSION_KEY
from members.selectors import memberships_of


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
