from dataclasses import dataclass

from allauth.mfa.models import Authenticator
from django.db.models import Case, CharField, Exists, F, OuterRef, Prefetch, Q, Value, When
from django.utils import timezone

from orgs.models import Organization, Workspace

from .models import Invitation, InvitationStatus, Membership, Role, User


def memberships_of(user: User):
    """The organizations a user belongs to, for the org switcher."""
    if not user.is_authenticated:
        return Membership.objects.none()
    return (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("organization__name")
    )


def workspaces_for(membership: Membership):
    """Workspaces a member may use: Admins every active one, others those they were given."""
    active = Workspace.objects.filter(
        organization_id=membership.organization_id, archived_at__isnull=True
    )
    if membership.role == Role.ADMIN:
        return active
    return active.filter(workspacemembership__membership=membership)


def admin_count(organization: Organization) -> int:
    return Membership.objects.filter(organization=organization, role=Role.ADMIN).count()


def admins_of(organization: Organization, limit: int = 5) -> list[User]:
    """A few Admins to name to someone who needs one ("ask an Admin: ...")."""
    return [
        m.user
        for m in Membership.objects.filter(organization=organization, role=Role.ADMIN)
        .select_related("user")
        .order_by("joined_at")[:limit]
    ]


def _active_workspaces_by_name():
    return Workspace.objects.filter(archived_at__isnull=True).only("id", "name").order_by("name")


def members_for_list(organization: Organization):
    """Members with user, workspaces and MFA in a fixed number of queries, however many rows."""
    second_factor = Authenticator.objects.filter(
        user_id=OuterRef("user_id"),
        type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN],
    )
    return (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .prefetch_related(Prefetch("workspaces", queryset=_active_workspaces_by_name()))
        .annotate(mfa_enabled=Exists(second_factor))
    )


def pending_invitations(organization: Organization):
    """Invitations still waiting for an answer: pending and not past their expiry."""
    return Invitation.objects.filter(
        organization=organization,
        status=InvitationStatus.PENDING,
        expires_at__gt=timezone.now(),
    )


def seats_used(organization: Organization) -> int:
    """What the member limit counts: members plus pending invitations."""
    return seats_of(organization).used


@dataclass(frozen=True)
class Seats:
    """The member limit as pages show it: who takes a seat, and whether one is free."""

    members: int
    pending: int  # invitations not yet accepted, revoked nor expired
    limit: int

    @property
    def used(self) -> int:
        return self.members + self.pending

    @property
    def free(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def is_full(self) -> bool:
        return self.used >= self.limit


def seats_of(organization: Organization) -> Seats:
    return Seats(
        members=Membership.objects.filter(organization=organization).count(),
        pending=pending_invitations(organization).count(),
        limit=organization.member_limit,
    )


def invitations_for_list(organization: Organization):
    """Every invitation of the organization with `state` (expired once past the expiry)."""
    state = Case(
        When(
            Q(status=InvitationStatus.PENDING, expires_at__lte=timezone.now()),
            then=Value(InvitationStatus.EXPIRED),
        ),
        default=F("status"),
        output_field=CharField(),
    )
    return (
        Invitation.objects.filter(organization=organization)
        .select_related("invited_by")
        .prefetch_related(Prefetch("workspaces", queryset=_active_workspaces_by_name()))
        .annotate(state_value=state)
    )


def has_pending_invitation(email: str) -> bool:
    """Whether `email` is invited to any organization (a pending invitation not yet expired):
    what lets an address sign up when sign-up is by invitation."""
    return Invitation.objects.filter(
        email__iexact=email.strip(),
        status=InvitationStatus.PENDING,
        expires_at__gt=timezone.now(),
    ).exists()
