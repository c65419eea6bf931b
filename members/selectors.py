from orgs.models import Organization, Workspace

from .models import Membership, Role, User


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


def members_for_list(organization: Organization):
    return Membership.objects.filter(organization=organization).select_related("user")
