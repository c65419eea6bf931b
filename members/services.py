from datetime import timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record_event
from core import emails
from core.when import when_text
from orgs import services as org_services
from orgs.models import Organization, Workspace
from orgs.selectors import default_workspace

from . import invitation_links
from .models import (
    INVITATION_LIFETIME,
    Invitation,
    InvitationStatus,
    Membership,
    Role,
    User,
    WorkspaceMembership,
)
from .selectors import seats_used, workspaces_for

# Sent inside the removal transaction, before the membership row goes. Apps above `members`
# (API keys) connect to it to end the member's access: kwargs membership, actor.
member_removing = Signal()
# Sent inside the transaction that takes workspaces away from a member who stays (their
# workspaces edited, or an Admin demoted), after the change. Apps above `members` (API keys)
# connect to it to end the member's access there: kwargs membership, workspaces (lost), actor.
workspace_access_lost = Signal()
# Sent inside the role-change transaction, after the change. Apps above `members` connect to it
# to end what the new role may no longer hold: kwargs membership, old_role, actor.
role_changed = Signal()

LAST_ADMIN_MESSAGE = "An organization needs at least one Admin. Make another member an Admin first."
ROLE_MESSAGE = "Choose Admin, Member or Billing-only."


@transaction.atomic
def create_organization(*, user: User, name: str, slug: str) -> Organization:
    """Step 1 of the guide: a user creates an organization and becomes its first Admin."""
    organization = org_services.create_empty_organization(name=name, slug=slug, actor=user)
    Membership.objects.create(organization=organization, user=user, role=Role.ADMIN)
    record_event(
        action="member.added",
        organization=organization,
        actor=user,
        target=user,
        after={"role": Role.ADMIN},
    )
    return organization


@transaction.atomic
def create_organization_for(
    *, admin_email: str, name: str, slug: str
) -> tuple[Organization, Invitation | None]:
    """A site operator creates an organization (`manage.py create_organization`): an existing
    account at `admin_email` becomes its Admin; another address is invited as its Admin (the
    invitation also lets it sign up when sign-up is by invitation). Returns the organization and
    the invitation, if one was sent."""
    email = _normalize_email(admin_email)
    user = User.objects.filter(email__iexact=email).first()
    if user is not None:
        return create_organization(user=user, name=name, slug=slug), None
    organization = org_services.create_empty_organization(name=name, slug=slug, actor=None)
    invitation = invite_member(organization=organization, email=email, role=Role.ADMIN, actor=None)
    return organization, invitation


@transaction.atomic
def add_member(
    *,
    organization: Organization,
    user: User,
    role: str,
    actor,
    workspaces: list[Workspace] | None = None,
    action: str = "member.added",
) -> Membership:
    """Add `user` with `role`. Non-Admins get `workspaces`, or the org's default workspace."""
    if role not in Role.values:
        raise ValidationError({"role": ROLE_MESSAGE})
    already = ValidationError(f"{user.email} is already a member of {organization.name}.")
    if Membership.objects.filter(organization=organization, user=user).exists():
        raise already
    try:
        with transaction.atomic():
            membership = Membership.objects.create(organization=organization, user=user, role=role)
    except IntegrityError as exc:  # a concurrent request added them first
        raise already from exc
    if role != Role.ADMIN:
        chosen = workspaces if workspaces else [default_workspace(organization)]
        _set_workspaces(membership, [w for w in chosen if w is not None], actor=actor, audit=False)
    record_event(
        action=action,
        organization=organization,
        actor=actor,
        target=user,
        after={
            "role": role,
            "workspaces": sorted(w.name for w in membership.workspaces.all()),
        },
    )
    return membership


def _lock_admins(organization: Organization) -> list[int]:
    """Lock the organization's Admin rows so two demotions cannot both pass the last-Admin check."""
    return list(
        Membership.objects.select_for_update()
        .filter(organization=organization, role=Role.ADMIN)
        .values_list("pk", flat=True)
    )


@transaction.atomic
def change_role(*, membership: Membership, role: str, actor) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": ROLE_MESSAGE})
    admin_ids = _lock_admins(membership.organization)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    old_role = membership.role
    if old_role == role:
        return membership
    if old_role == Role.ADMIN and admin_ids == [membership.pk]:
        raise ValidationError(LAST_ADMIN_MESSAGE)
    reachable = _reachable_workspace_ids(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    record_event(
        action="member.role_changed",
        organization=membership.organization,
        actor=actor,
        target=membership.user,
        before={"role": old_role},
        after={"role": role},
    )
    if role != Role.ADMIN and not membership.workspaces.exists():
        # A member needs a workspace: the default one, recorded as set_member_workspaces does.
        default = default_workspace(membership.organization)
        if default is not None:
            _set_workspaces(membership, [default], actor=actor, audit=True)
    # A demoted Admin no longer reaches every workspace.
    _announce_lost_workspaces(membership, reachable, actor=actor)
    role_changed.send(sender=Membership, membership=membership, old_role=old_role, actor=actor)
    return membership


@transaction.atomic
def remove_member(*, membership: Membership, actor, action: str = "member.removed") -> None:
    """End a member's access to the organization at once. Their API keys are revoked too."""
    admin_ids = _lock_admins(membership.organization)
    membership = (
        Membership.objects.select_for_update()
        .select_related("organization", "user")
        .get(pk=membership.pk)
    )
    if membership.role == Role.ADMIN and admin_ids == [membership.pk]:
        raise ValidationError(LAST_ADMIN_MESSAGE)
    member_removing.send(sender=Membership, membership=membership, actor=actor)
    record_event(
        action=action,
        organization=membership.organization,
        actor=actor,
        target=membership.user,
        before={"role": membership.role},
    )
    membership.delete()


def is_only_admin(membership: Membership) -> bool:
    """The organization's one Admin, who cannot leave or be removed (LAST_ADMIN_MESSAGE)."""
    return (
        membership.role == Role.ADMIN
        and not Membership.objects.filter(
            organization_id=membership.organization_id, role=Role.ADMIN
        )
        .exclude(pk=membership.pk)
        .exists()
    )


def leave_organization(*, membership: Membership) -> None:
    remove_member(membership=membership, actor=membership.user, action="member.left")


def _set_workspaces(membership: Membership, workspaces: list[Workspace], *, actor, audit: bool):
    # Links to archived workspaces are left alone: they cannot be chosen, and they are history.
    current = {
        wm.workspace_id: wm
        for wm in membership.workspacemembership_set.select_related("workspace").filter(
            workspace__archived_at__isnull=True
        )
    }
    wanted = {w.pk: w for w in workspaces}
    for workspace in workspaces:
        if workspace.organization_id != membership.organization_id:
            raise ValidationError({"workspaces": "Choose workspaces of this organization."})
        if workspace.is_archived:
            raise ValidationError({"workspaces": f"Workspace {workspace.name} is archived."})
    for pk, workspace in wanted.items():
        if pk not in current:
            WorkspaceMembership.objects.create(membership=membership, workspace=workspace)
            if audit:
                record_event(
                    action="workspace_member.added",
                    organization=membership.organization,
                    actor=actor,
                    target=membership.user,
                    after={"workspace": workspace.name},
                )
    for pk, link in current.items():
        if pk not in wanted:
            name = link.workspace.name
            link.delete()
            if audit:
                record_event(
                    action="workspace_member.removed",
                    organization=membership.organization,
                    actor=actor,
                    target=membership.user,
                    before={"workspace": name},
                )


@transaction.atomic
def set_member_workspaces(*, membership: Membership, workspaces: list[Workspace], actor) -> None:
    """Choose the workspaces of a Member or Billing-only user. Admins are in every workspace."""
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == Role.ADMIN:
        raise ValidationError("Admins are in every workspace; there is nothing to choose.")
    reachable = _reachable_workspace_ids(membership)
    _set_workspaces(membership, workspaces, actor=actor, audit=True)
    _announce_lost_workspaces(membership, reachable, actor=actor)


def _reachable_workspace_ids(membership: Membership) -> set[int]:
    return set(workspaces_for(membership).values_list("pk", flat=True))


def _announce_lost_workspaces(membership: Membership, reachable_before: set[int], *, actor):
    """Tell apps above us which workspaces the member reached before and no longer does
    (an Admin reaches every workspace without links, so only what is truly lost counts)."""
    lost_ids = reachable_before - _reachable_workspace_ids(membership)
    if lost_ids:
        workspace_access_lost.send(
            sender=Membership,
            membership=membership,
            workspaces=list(Workspace.objects.filter(pk__in=lost_ids).order_by("name")),
            actor=actor,
        )


# Invitations ------------------------------------------------------------------------------------


def member_limit_message(organization: Organization) -> str:
    return (
        f"{organization.name} has reached its member limit ({organization.member_limit} members "
        f"and pending invitations). To raise it, contact {settings.CONSOLE_SUPPORT_CONTACT}."
    )


def _check_seat_free(organization: Organization) -> None:
    if seats_used(organization) >= organization.member_limit:
        raise ValidationError(member_limit_message(organization))


def _invitation_link(invitation: Invitation, token: str) -> str:
    path = reverse("invitations:open", args=[invitation_links.link_token(invitation.pk, token)])
    return emails.absolute_url(path)


def _send_invitation_email(invitation: Invitation, link: str) -> None:
    context = {
        "invitation": invitation,
        "organization": invitation.organization,
        "inviter": invitation.invited_by,
        "role": invitation.get_role_display(),
        "link": link,
        "expires_at": invitation.expires_at,
    }
    emails.send(emails.make_message("invitation", invitation.email, context))


def _send_after_commit(invitation: Invitation, link: str) -> None:
    # robust: the invitation is saved either way; a mail server failure is logged, and the
    # Admin can resend, rather than the page failing after the commit.
    transaction.on_commit(lambda: _send_invitation_email(invitation, link), robust=True)


def _expire_overdue(queryset) -> int:
    """Write `expired` on pending invitations past their expiry, one audit event each."""
    now = timezone.now()
    count = 0
    overdue = queryset.select_for_update(of=("self",)).filter(
        status=InvitationStatus.PENDING, expires_at__lte=now
    )
    for invitation in overdue.select_related("organization"):
        invitation.status = InvitationStatus.EXPIRED
        invitation.closed_at = now
        invitation.save(update_fields=["status", "closed_at"])
        record_event(
            action="invitation.expired",
            organization=invitation.organization,
            target=invitation,
            target_label=invitation.email,
            before={"status": InvitationStatus.PENDING},
            after={"status": InvitationStatus.EXPIRED},
        )
        count += 1
    return count


@transaction.atomic
def expire_invitations() -> int:
    """Mark every overdue pending invitation expired (a periodic sweep; safe to run twice)."""
    return _expire_overdue(Invitation.objects.all())


def _normalize_email(email: str) -> str:
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid email address."}) from None
    return email.lower()


def _check_invitable(organization: Organization, email: str, *, exclude_pk=None) -> None:
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise ValidationError({"email": f"{email} is already a member of {organization.name}."})
    pending = Invitation.objects.filter(
        organization=organization, email__iexact=email, status=InvitationStatus.PENDING
    ).exclude(pk=exclude_pk)
    if pending.exists():
        raise ValidationError(
            {
                "email": f"{email} already has a pending invitation. "
                "Resend it from the Invitations tab instead."
            }
        )


@transaction.atomic
def invite_member(
    *,
    organization: Organization,
    email: str,
    role: str,
    actor: User,
    workspaces: list[Workspace] | None = None,
) -> Invitation:
    """Invite `email` with `role`; the email with the link goes out once the transaction commits.

    The link is on the console's address, CONSOLE_BASE_URL (never a request's Host header).
    Refused for an existing member, an address with a pending invitation, a role outside the
    three, and an organization at its member limit (members plus pending invitations).
    """
    email = _normalize_email(email)
    if role not in Role.values:
        raise ValidationError({"role": ROLE_MESSAGE})
    workspaces = [] if role == Role.ADMIN else list(workspaces or [])
    for workspace in workspaces:
        if workspace.organization_id != organization.pk:
            raise ValidationError({"workspaces": "Choose workspaces of this organization."})
        if workspace.is_archived:
            raise ValidationError({"workspaces": f"Workspace {workspace.name} is archived."})
    # One invitation at a time per organization: the seat count and the checks stay true.
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    _expire_overdue(Invitation.objects.filter(organization=organization, email__iexact=email))
    _check_invitable(organization, email)
    _check_seat_free(organization)
    token, token_hash = invitation_links.new_token()
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        invited_by=actor if getattr(actor, "is_authenticated", False) else None,
        token_hash=token_hash,
    )
    invitation.workspaces.set(workspaces)
    record_event(
        action="member.invited",
        organization=organization,
        actor=actor,
        target=invitation,
        target_label=invitation.email,
        after={
            "email": email,
            "role": role,
            "workspaces": sorted(w.name for w in workspaces),
            "expires_at": invitation.expires_at,
        },
    )
    _send_after_commit(invitation, _invitation_link(invitation, token))
    return invitation


# Resends per hour, counted from the audit log (the record of every resend): enough for an Admin
# fixing a typo or a lost email, too few to turn the console into a mail cannon.
RESENDS_PER_INVITATION_PER_HOUR = 3
RESENDS_PER_ORGANIZATION_PER_HOUR = 20


def _check_resend_allowed(organization: Organization, invitation: Invitation) -> None:
    """Refuse, in words with the time to try again, a resend over the hourly limits."""
    since = timezone.now() - timedelta(hours=1)
    recent = AuditEvent.objects.filter(
        action="invitation.resent", organization=organization, created_at__gte=since
    )
    mine = recent.filter(target_type=Invitation._meta.label_lower, target_id=str(invitation.pk))
    for events, limit, what in (
        (mine, RESENDS_PER_INVITATION_PER_HOUR, "This invitation was sent {n} times"),
        (recent, RESENDS_PER_ORGANIZATION_PER_HOUR, "{n} invitations were resent"),
    ):
        times = list(events.order_by("-created_at").values_list("created_at", flat=True)[:limit])
        if len(times) >= limit:
            again = when_text(times[-1] + timedelta(hours=1), organization)
            raise ValidationError(
                f"{what.format(n=limit)} in the last hour. Try again after {again}."
            )


@transaction.atomic
def resend_invitation(*, invitation: Invitation, actor: User) -> Invitation:
    """Send a new link with a new 7-day expiry. The previous link stops working. At most
    RESENDS_PER_INVITATION_PER_HOUR times an hour per invitation and
    RESENDS_PER_ORGANIZATION_PER_HOUR per organization."""
    organization = Organization.objects.select_for_update().get(pk=invitation.organization_id)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    _check_resend_allowed(organization, invitation)
    if invitation.status in (InvitationStatus.ACCEPTED, InvitationStatus.REVOKED):
        raise ValidationError(
            f"This invitation was {invitation.get_status_display().lower()}; "
            "it cannot be sent again. Invite the address anew."
        )
    if invitation.is_expired:
        # It comes back to life: it takes a seat again and must still be the only one.
        _check_invitable(organization, invitation.email, exclude_pk=invitation.pk)
        _check_seat_free(organization)
    before = {"expires_at": invitation.expires_at, "status": invitation.status}
    token, invitation.token_hash = invitation_links.new_token()
    now = timezone.now()
    invitation.status = InvitationStatus.PENDING
    invitation.closed_at = None
    invitation.sent_at = now
    invitation.expires_at = now + INVITATION_LIFETIME
    invitation.save(update_fields=["token_hash", "status", "closed_at", "sent_at", "expires_at"])
    record_event(
        action="invitation.resent",
        organization=organization,
        actor=actor,
        target=invitation,
        target_label=invitation.email,
        before=before,
        after={"expires_at": invitation.expires_at, "status": invitation.status},
    )
    _send_after_commit(invitation, _invitation_link(invitation, token))
    return invitation


@transaction.atomic
def revoke_invitation(*, invitation: Invitation, actor: User) -> Invitation:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.status != InvitationStatus.PENDING:
        raise ValidationError(
            f"This invitation is already {invitation.get_status_display().lower()}."
        )
    invitation.status = InvitationStatus.REVOKED
    invitation.closed_at = timezone.now()
    invitation.save(update_fields=["status", "closed_at"])
    record_event(
        action="invitation.revoked",
        organization=invitation.organization,
        actor=actor,
        target=invitation,
        target_label=invitation.email,
        before={"status": InvitationStatus.PENDING},
        after={"status": InvitationStatus.REVOKED},
    )
    return invitation


def invitation_problem(invitation: Invitation) -> str | None:
    """Why this invitation cannot be accepted, in words for the invitee; None if it can."""
    if invitation.status == InvitationStatus.ACCEPTED:
        return "This invitation has already been used. Each invitation link works once."
    if invitation.status == InvitationStatus.REVOKED:
        return (
            f"This invitation was withdrawn by an Admin of {invitation.organization.name}. "
            "Ask them for a new one."
        )
    if invitation.is_expired:
        return (
            "This invitation has expired (invitations are valid for 7 days). "
            f"Ask an Admin of {invitation.organization.name} to send it again."
        )
    return None


def email_matches(user: User, email: str) -> bool:
    """The account's email is the invited one (or one of its verified addresses)."""
    if user.email.lower() == email.lower():
        return True
    return EmailAddress.objects.filter(user=user, email__iexact=email, verified=True).exists()


def wrong_account_message(invitation: Invitation, user: User) -> str:
    return (
        f"This invitation was sent to {invitation.email}, but you are signed in as {user.email}. "
        f"Sign out, then open the link again and sign in or sign up as {invitation.email}."
    )


@transaction.atomic
def accept_invitation(*, invitation: Invitation, token_hash: str, user: User) -> Membership:
    """The invitee joins with the invited role and workspaces (or the default workspace).

    The invitation row is locked, so two simultaneous accepts of one link yield one membership:
    the second finds it accepted. The link's token must still be the current one.
    """
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation_links.same_hash(invitation.token_hash, token_hash):
        raise ValidationError(
            "This link has been replaced by a newer invitation email. Use the latest one."
        )
    problem = invitation_problem(invitation)
    if problem:
        raise ValidationError(problem)
    if not email_matches(user, invitation.email):
        raise ValidationError(wrong_account_message(invitation, user))
    organization = invitation.organization
    membership = Membership.objects.filter(organization=organization, user=user).first()
    if membership is None:
        workspaces = [w for w in invitation.workspaces.all() if not w.is_archived]
        membership = add_member(
            organization=organization,
            user=user,
            role=invitation.role,
            actor=user,
            workspaces=workspaces,
            action="member.joined",
        )
    invitation.status = InvitationStatus.ACCEPTED
    invitation.accepted_by = user
    invitation.closed_at = timezone.now()
    invitation.save(update_fields=["status", "accepted_by", "closed_at"])
    record_event(
        action="invitation.accepted",
        organization=organization,
        actor=user,
        target=invitation,
        target_label=invitation.email,
        before={"status": InvitationStatus.PENDING},
        after={"status": InvitationStatus.ACCEPTED, "role": membership.role},
    )
    return membership
