"""Resolve the organization in the URL against the signed-in user's membership.

Every org-scoped view goes through `org_view` (functions) or `OrgViewMixin` (classes): the
organization comes from `<slug>` in the URL, a user who is not a member gets 404 whether or not
the organization exists, and the capability is checked by the role policy (403 when denied).
"""

from functools import wraps
from urllib.parse import urlencode

from allauth.account.authentication import get_authentication_records
from allauth.mfa.utils import is_mfa_enabled
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from orgs.models import FormerSlug

from .models import Membership
from .policy import can

LAST_ORG_SESSION_KEY = "console_last_org"
# Set by members.signals when this session enrolled a second factor (proving it with a code).
MFA_ENROLLED_SESSION_KEY = "console_mfa_enrolled"


def resolve_membership(request, slug: str) -> Membership:
    try:
        membership = Membership.objects.select_related("organization", "user").get(
            organization__slug=slug, user=request.user
        )
    except Membership.DoesNotExist:
        raise Http404("No organization here.") from None
    return membership


def moved_organization_url(request, slug: str) -> str | None:
    """The same page under the organization's current slug, when `slug` is one it used before
    and the user is its member (others learn nothing: 404)."""
    former = (
        FormerSlug.objects.select_related("organization")
        .filter(slug=slug, organization__memberships__user=request.user)
        .first()
    )
    if former is None:
        return None
    old_prefix, new_prefix = f"/o/{slug}/", f"/o/{former.organization.slug}/"
    path = request.get_full_path()
    return new_prefix + path[len(old_prefix) :] if path.startswith(old_prefix) else new_prefix


def session_used_second_factor(request) -> bool:
    """Whether this session proved a second factor: signed in (or re-authenticated) with one,
    as allauth records per session, or enrolled one in it. A user who has MFA is not enough:
    a session that signed in with a password before the user enrolled elsewhere has not."""
    records = get_authentication_records(request, request.user)
    if any(record.get("method") == "mfa" for record in records):
        return True
    return request.session.get(MFA_ENROLLED_SESSION_KEY) == str(request.user.pk)


def enter_org(request, slug: str, capability: str):
    """Return a response to send instead of the view (login, MFA setup, the organization's
    new address), or None to go on. To htmx (a filter, a sort, the usage dashboard's refresh
    after the session expired) the redirect is one of the whole page (HX-Redirect): followed
    by the request itself, the login page would be swapped into a part of the page."""
    response = _entering(request, slug, capability)
    if (
        response is not None
        and getattr(request, "htmx", False)
        and response.status_code in (301, 302)
    ):
        return HttpResponseClientRedirect(response["Location"])
    return response


def _entering(request, slug: str, capability: str):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    try:
        membership = resolve_membership(request, slug)
    except Http404:
        moved = moved_organization_url(request, slug)
        if moved is None:
            raise
        # Temporary (302): the organization may take the old slug back one day.
        return redirect(moved)
    organization = membership.organization
    if organization.require_mfa:
        if not is_mfa_enabled(request.user):
            messages.warning(
                request,
                f"{organization.name} requires two-factor authentication. Set it up to continue.",
            )
            return redirect("mfa_activate_totp")
        if not session_used_second_factor(request):
            messages.warning(
                request,
                f"{organization.name} requires two-factor authentication: confirm it for this "
                "session to continue.",
            )
            return redirect(
                f"{reverse('mfa_reauthenticate')}?{urlencode({'next': request.get_full_path()})}"
            )
    # Known before the permission check: a refused page keeps the organization's shell.
    request.organization = organization
    request.membership = membership
    if not can(membership, capability):
        raise PermissionDenied(f"Your role does not allow this ({capability}).")
    if request.session.get(LAST_ORG_SESSION_KEY) != organization.slug:
        request.session[LAST_ORG_SESSION_KEY] = organization.slug
    return None


ALLOWED_METHODS = ("GET", "HEAD", "POST")  # what a console page answers; anything else is a 405


def org_view(capability: str):
    """Decorate a view taking `slug`: it runs only for members whose role grants `capability`."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, slug, *args, **kwargs):
            response = enter_org(request, slug, capability)
            if response is not None:
                return response
            if request.method not in ALLOWED_METHODS:  # as class-based views answer
                return HttpResponseNotAllowed(ALLOWED_METHODS)
            return view(request, *args, **kwargs)

        wrapper.capability = capability
        return wrapper

    return decorator


def org_object_view(capability: str, find):
    """Decorate a view of one object: it runs only when the role policy grants `capability` on
    that object ("apikeys.manage": an Admin any key, a Member their own).

    `find(request, **url_kwargs)` returns the object from what the member may see in
    `request.organization` (Http404 otherwise); the view is called as `view(request, obj)`.
    Entering the page needs the area's "view" capability (403 without it, like `org_view`); an
    object the member may see but not change is not found (404), as another member's key is
    not listed."""
    area = capability.partition(".")[0]

    def decorator(view):
        @wraps(view)
        def with_object(request, **kwargs):
            obj = find(request, **kwargs)
            if not can(request.membership, capability, obj):
                raise Http404("Nothing of yours here.")
            return view(request, obj)

        wrapper = org_view(f"{area}.view")(with_object)
        wrapper.capability = capability
        return wrapper

    return decorator


class OrgViewMixin:
    """Class-based counterpart of `org_view`; set `capability`."""

    capability: str = ""

    def dispatch(self, request, *args, **kwargs):
        slug = kwargs.pop("slug")
        response = enter_org(request, slug, self.capability)
        if response is not None:
            return response
        self.organization = request.organization
        self.membership = request.membership
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("organization", self.organization)
        return context
