"""Reads of API keys, scoped to an organization and to what the member may see."""

import datetime as dt

from django.db.models import Q, QuerySet
from django.utils import timezone

from members.models import Membership, User
from members.policy import can
from members.selectors import workspaces_for
from orgs.models import Workspace

from .models import ApiKey, KeyStatus


def keys_visible_to(membership: Membership) -> QuerySet[ApiKey]:
    """Admins see every key of the organization; Members their own only."""
    keys = ApiKey.objects.filter(organization_id=membership.organization_id)
    if not can(membership, "apikeys.view_all"):
        keys = keys.filter(owner_id=membership.user_id)
    return keys


def keys_for_list(membership: Membership) -> QuerySet[ApiKey]:
    return keys_visible_to(membership).select_related("workspace", "owner")


def with_status(keys: QuerySet[ApiKey], status: str, now: dt.datetime | None = None):
    """Filter by the status `ApiKey.status_at` computes: revoked wins over expired."""
    now = now or timezone.now()
    if status == KeyStatus.REVOKED:
        return keys.filter(revoked_at__isnull=False)
    if status == KeyStatus.EXPIRED:
        return keys.filter(revoked_at__isnull=True, expires_at__lte=now)
    if status == KeyStatus.ACTIVE:
        return keys.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), revoked_at=None)
    return keys


def active_keys_in_workspace(workspace: Workspace) -> QuerySet[ApiKey]:
    """The keys that work in `workspace` now: what archiving it would revoke."""
    return with_status(ApiKey.objects.filter(workspace_id=workspace.pk), KeyStatus.ACTIVE)


def key_owners(membership: Membership) -> QuerySet[User]:
    """People a member may filter the key list by: the organization's members."""
    return User.objects.filter(memberships__organization_id=membership.organization_id).order_by(
        "email"
    )


def key_workspaces(membership: Membership) -> QuerySet[Workspace]:
    """Workspaces a member may filter the key list by: Admins every one of the organization
    (archived too); others those they reach and those their own keys are in."""
    workspaces = Workspace.objects.filter(organization_id=membership.organization_id)
    if can(membership, "apikeys.view_all"):
        return workspaces.order_by("name")
    return workspaces.filter(
        Q(pk__in=workspaces_for(membership).values("pk"))
        | Q(pk__in=keys_visible_to(membership).values("workspace_id"))
    ).order_by("name")


def key_matching_display(display: str, organization_id: int | None = None) -> QuerySet[ApiKey]:
    """Keys shown as `csk_AbCd…wxyz` (or with `...`), for operators holding only that."""
    head, _, tail = display.replace("...", "…").partition("…")
    keys = ApiKey.objects.filter(prefix=head, last4=tail)
    if organization_id is not None:
        keys = keys.filter(organization_id=organization_id)
    return keys
