"""Members: the list, invitations, roles, workspace access, removal and leaving; and the invitee's
side of an invitation link (public: the invitee is not a member yet)."""

from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from . import invitation_links, services
from .access import org_view, resolve_membership
from .confirm import confirm_then_run
from .filters import InvitationFilter, MemberFilter
from .forms import InviteForm, MemberWorkspacesForm, RoleForm, add_service_errors
from .listing import OrgTableView
from .models import Invitation, InvitationStatus, Membership
from .policy import can
from .reauth import sensitive_action
from .selectors import (
    admins_of,
    invitations_for_list,
    members_for_list,
    seats_of,
)
from .tables import InvitationTable, MemberTable

# Access ---------------------------------------------------------------------------------------


def forbidden(request, slug: str):
    """403 for a member whose role does not reach the members area, saying who can help."""
    membership = resolve_membership(request, slug)
    request.organization, request.membership = membership.organization, membership
    context = {"admins": admins_of(membership.organization), "nav": "members"}
    return render(request, "members/forbidden.html", context, status=403)


def members_view(capability: str):
    """`org_view`, with the members area's own 403 page (only Admins may invite; who they are)."""

    def decorator(view):
        guarded = org_view(capability)(view)

        @wraps(view)
        def wrapper(request, slug, *args, **kwargs):
            try:
                return guarded(request, slug, *args, **kwargs)
            except PermissionDenied:
                return forbidden(request, slug)

        wrapper.capability = capability
        return wrapper

    return decorator


class MembersTableView(OrgTableView):
    capability = "members.view"

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        except PermissionDenied:
            return forbidden(request, kwargs["slug"])

    def get_context_data(self, **kwargs):
        seats = seats_of(self.organization)
        return super().get_context_data(
            nav="members",
            seats=seats,
            member_count=seats.members,
            pending_count=seats.pending,
            **kwargs,
        )


# Lists ------------------------------------------------------------------------------------------


class MemberListView(MembersTableView):
    table_class = MemberTable
    filterset_class = MemberFilter
    template_name = "members/member_list.html"
    export_name = "members"

    def get_queryset(self):
        return members_for_list(self.organization)


class InvitationListView(MembersTableView):
    table_class = InvitationTable
    filterset_class = InvitationFilter
    template_name = "members/invitation_list.html"
    export_name = "invitations"

    def get_queryset(self):
        return invitations_for_list(self.organization)

    def get_filterset_kwargs(self, filterset_class):
        kwargs = super().get_filterset_kwargs(filterset_class)
        # The tab opens on what needs attention: pending invitations.
        if "state" not in self.request.GET:
            data = self.request.GET.copy()
            data["state"] = InvitationStatus.PENDING
            kwargs["data"] = data
        return kwargs


# Invitations (Admin side) -----------------------------------------------------------------------


@members_view("members.manage")
def invite(request):
    organization = request.organization
    form = InviteForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        try:
            invitation = services.invite_member(
                organization=organization,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                workspaces=list(form.cleaned_data["workspaces"]),
                actor=request.user,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(
                request,
                f"Invitation sent to {invitation.email} as {invitation.get_role_display()}. "
                "The link is valid for 7 days.",
            )
            return redirect("members:invitations", organization.slug)
    context = {"form": form, "nav": "members", "seats": seats_of(organization)}
    return render(request, "members/invite_form.html", context)


def _invitation(request, invitation_id: int) -> Invitation:
    return get_object_or_404(Invitation, pk=invitation_id, organization=request.organization)


@members_view("members.manage")
def invitation_resend(request, invitation_id: int):
    invitation = _invitation(request, invitation_id)
    return confirm_then_run(
        request,
        run=lambda: services.resend_invitation(invitation=invitation, actor=request.user),
        success=f"Invitation sent again to {invitation.email}; valid for 7 days.",
        done_url=reverse("members:invitations", args=[request.organization.slug]),
        template="members/invitation_confirm.html",
        context={"invitation": invitation, "action": "resend", "nav": "members"},
    )


@members_view("members.manage")
def invitation_revoke(request, invitation_id: int):
    invitation = _invitation(request, invitation_id)
    return confirm_then_run(
        request,
        run=lambda: services.revoke_invitation(invitation=invitation, actor=request.user),
        success=f"Invitation of {invitation.email} revoked.",
        done_url=reverse("members:invitations", args=[request.organization.slug]),
        template="members/invitation_confirm.html",
        context={"invitation": invitation, "action": "revoke", "nav": "members"},
    )


# Members ----------------------------------------------------------------------------------------


def _member(request, member_id: int) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("user"),
        pk=member_id,
        organization=request.organization,
    )


@members_view("members.manage")
@sensitive_action
def member_role(request, member_id: int):
    member = _member(request, member_id)
    form = RoleForm(request.POST or None, initial={"role": member.role})
    if request.method == "POST" and form.is_valid():
        try:
            services.change_role(
                membership=member, role=form.cleaned_data["role"], actor=request.user
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            member.refresh_from_db()
            messages.success(request, f"{member.user.email} is now {member.get_role_display()}.")
            if member.pk == request.membership.pk and not can(member, "members.view"):
                return redirect("org_home", request.organization.slug)
            return redirect("members:list", request.organization.slug)
    context = {"form": form, "member": member, "nav": "members"}
    return render(request, "members/member_role.html", context)


@members_view("members.manage")
def member_workspaces(request, member_id: int):
    member = _member(request, member_id)
    is_admin = member.is_admin
    current = list(member.workspaces.filter(archived_at__isnull=True))
    form = MemberWorkspacesForm(
        request.POST or None, initial={"workspaces": current}, organization=request.organization
    )
    if request.method == "POST" and not is_admin and form.is_valid():
        try:
            services.set_member_workspaces(
                membership=member,
                workspaces=list(form.cleaned_data["workspaces"]),
                actor=request.user,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Workspaces of {member.user.email} saved.")
            return redirect("members:list", request.organization.slug)
    context = {"form": form, "member": member, "is_admin": is_admin, "nav": "members"}
    return render(request, "members/member_workspaces.html", context)


@members_view("members.manage")
def member_remove(request, member_id: int):
    member = _member(request, member_id)
    error = None
    if request.method == "POST":
        try:
            services.remove_member(membership=member, actor=request.user)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(
                request, f"{member.user.email} was removed from {request.organization.name}."
            )
            if member.user_id == request.user.pk:
                return redirect("home")
            return redirect("members:list", request.organization.slug)
    context = {"member": member, "error": error, "nav": "members"}
    return render(request, "members/member_remove.html", context, status=400 if error else 200)


@members_view("org.view")
def leave(request):
    organization = request.organization
    error = None
    if request.method == "POST":
        try:
            services.leave_organization(membership=request.membership)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, f"You left {organization.name}.")
            return redirect("home")
    # The only Admin is told before trying, and is offered no button that cannot work.
    blocked = services.LAST_ADMIN_MESSAGE if services.is_only_admin(request.membership) else None
    context = {"error": error or blocked, "blocked": blocked, "nav": "home"}
    return render(request, "members/leave.html", context, status=400 if error else 200)


# Invitations (invitee side, public) -------------------------------------------------------------


def _link_problem(request, message: str, *, status: int):
    invitation_links.forget_in_session(request)
    return render(request, "members/invitation_invalid.html", {"message": message}, status=status)


@never_cache
def invitation_open(request, token: str):
    """The emailed link: check it, remember it in the session, and move on to a URL without it
    (so the token does not linger in the address bar, history or Referer)."""
    try:
        invitation_id, token_hash = invitation_links.read_link_token(token)
    except invitation_links.DamagedLink:
        return _link_problem(
            request,
            "This invitation link is damaged or incomplete. Copy the whole link from the email, "
            "or open it by clicking it.",
            status=400,
        )
    invitation = Invitation.objects.select_related("organization").filter(pk=invitation_id).first()
    if invitation is None:
        return _link_problem(request, "This invitation no longer exists.", status=404)
    problem = services.invitation_problem(invitation)
    if problem:
        return _link_problem(request, problem, status=410)
    if not invitation_links.same_hash(invitation.token_hash, token_hash):
        return _link_problem(
            request,
            "This link has been replaced by a newer invitation email. Use the link in the "
            "latest email.",
            status=410,
        )
    invitation_links.remember_in_session(request, invitation, token_hash)
    return redirect("invitations:accept")


@never_cache
def invitation_accept(request):
    invitation, token_hash = invitation_links.invitation_in_session(request)
    if invitation is None:
        return render(request, "members/invitation_invalid.html", {"message": None}, status=200)
    if not invitation_links.same_hash(invitation.token_hash, token_hash):
        return _link_problem(
            request,
            "This link has been replaced by a newer invitation email. Use the link in the "
            "latest email.",
            status=410,
        )
    problem = services.invitation_problem(invitation)
    if problem:
        return _link_problem(request, problem, status=410)
    here = reverse("invitations:accept")
    context = {"invitation": invitation, "organization_invited": invitation.organization}
    if not request.user.is_authenticated:
        if request.method == "POST":
            return redirect(f"{reverse('account_login')}?{urlencode({'next': here})}")
        context["signup_url"] = (
            reverse("account_signup") + "?" + urlencode({"email": invitation.email, "next": here})
        )
        context["login_url"] = (
            reverse("account_login") + "?" + urlencode({"email": invitation.email, "next": here})
        )
        return render(request, "members/invitation_accept.html", context)
    if not services.email_matches(request.user, invitation.email):
        context["wrong_account"] = services.wrong_account_message(invitation, request.user)
        return render(request, "members/invitation_accept.html", context, status=403)
    if request.method == "POST":
        try:
            membership = services.accept_invitation(
                invitation=invitation, token_hash=token_hash, user=request.user
            )
        except ValidationError as error:
            return _link_problem(request, " ".join(error.messages), status=409)
        invitation_links.forget_in_session(request)
        messages.success(
            request,
            f"Welcome to {membership.organization.name}. "
            f"You joined as {membership.get_role_display()}.",
        )
        return redirect("org_home", membership.organization.slug)
    return render(request, "members/invitation_accept.html", context)
