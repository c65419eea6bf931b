from django.core.exceptions import ValidationError
from django.db import transaction
from django.dispatch import Signal

from audit.services import record_event
from orgs import services as org_services
from orgs.models import Organization, Workspace
from orgs.selectors import default_workspace

from .models import Membership, Role, User, WorkspaceMembership

# Sent inside the removal transaction, before the membership row goes. Apps above `members`
# (API keys) connect to it to end the member's access: kwargs membership, actor.
member_removing = Signal()

LAST_ADMIN_MESSAGE = "An organization needs at least one Admin. Make another member an Admin first."


@transaction.atomic
def create_organization(*, user: User, name: str, slug: str) -> Organization:
    """Step 1 of the guide: a user creates an organization and becomes its first Admin."""
    organization = org_services.create_organization(name=name, slug=slug, actor=user)
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
        raise ValidationError({"role": "Choose Admin, Member or Billing-only."})
    if Membership.objects.filter(organization=organization, user=user).exists():
        raise ValidationError(f"{user.email} is already a member of {organization.name}.")
    membership = Membership.objects.create(organization=organization, user=user, role=role)
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
        raise ValidationError({"role": "Choose Admin, Member or Billing-only."})
    admin_ids = _lock_admins(membership.organization)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    old_role = membership.role
    if old_role == role:
        return membership
    if old_role == Role.ADMIN and admin_ids == [membership.pk]:
        raise ValidationError(LAST_ADMIN_MESSAGE)
    membership.role = role
    membership.save(update_fields=["role"])
    if role != Role.ADMIN and not membership.workspaces.exists():
        default = default_workspace(membership.organization)
        if default is not None:
            WorkspaceMembership.objects.create(membership=membership, workspace=default)
    record_event(
        action="member.role_changed",
        organization=membership.organization,
        actor=actor,
        target=membership.user,
        before={"role": old_role},
        after={"role": role},
    )
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


def leave_organization(*, membership: Membership) -> None:
    remove_member(membership=membership, actor=membership.user, action="member.left")


def _set_workspaces(membership: Membership, workspaces: list[Workspace], *, actor, audit: bool):
    current = {wm.workspace_id: wm for wm in membership.workspacemembership_set.all()}
    wanted = {w.pk: w for w in workspaces}
    for workspace in workspaces:
        if workspace.organization_id != membership.organization_id:
            raise ValidationError({"workspaces": "Choose workspaces of this organization."})
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
    _set_workspaces(membership, workspaces, actor=actor, audit=True)
