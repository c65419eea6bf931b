"""Reads of API keys, scoped to an organization and to what the member may see."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils import timezone

from members.models import Membership, User
from members.policy import can
from members.selectors import workspaces_for
from orgs.models import Workspace

from .keyformat import ADMIN_PREFIX, check_key_format, hash_key
from .models import AdminKey, ApiKey, KeyStatus


def keys_visible_to(membership: Membership) -> QuerySet[ApiKey]:
    """Admins see every key of the organization; Members their own only."""
    keys = ApiKey.objects.filter(organization_id=membership.organization_id)
    if not can(membership, "apikeys.view_all"):
        keys = keys.filter(owner_id=membership.user_id)
    return keys


def keys_for_list(membership: Membership) -> QuerySet[ApiKey]:
    # replaced_by and replaces: a rotated key's row names its successor and the other way round.
    return keys_visible_to(membership).select_related(
        "workspace", "owner", "replaced_by", "replaces"
    )


def key_made_by_form(membership: Membership, form_token: str | None) -> ApiKey | None:
    """The key a Create Key form with this one-time token made already, if it did."""
    if not form_token:
        return None
    return (
        ApiKey.objects.filter(form_token=form_token, organization_id=membership.organization_id)
        .select_related("workspace", "owner")
        .first()
    )


def same_named_keys(
    membership: Membership, name: str, *, exclude: ApiKey | None = None
) -> QuerySet[ApiKey]:
    """The member's own working keys called `name` (any case), not rotated: a second key of
    that name would be hard to tell apart. A rotated key and its successor share their name
    on purpose, and their rows link them."""
    keys = with_status(
        ApiKey.objects.filter(
            organization_id=membership.organization_id,
            owner_id=membership.user_id,
            name__iexact=name.strip(),
            replaced_by__isnull=True,
        ),
        KeyStatus.ACTIVE,
    )
    if exclude is not None:
        keys = keys.exclude(pk=exclude.pk)
    return keys


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


def admin_keys_for_list(membership: Membership) -> QuerySet[AdminKey]:
    """The organization's admin keys, for its Admins (the view checks `adminkeys.view`)."""
    return AdminKey.objects.filter(organization_id=membership.organization_id).select_related(
        "owner"
    )


@dataclass(frozen=True)
class AdminKeyCheck:
    """An admin key accepted (`key` and the owner's Admin `membership`), or why not."""

    key: AdminKey | None = None
    membership: Membership | None = None
    failure: str = ""  # malformed | unknown | revoked | not_admin
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.failure


def authenticate_admin_key(raw) -> AdminKeyCheck:
    """Read on every Admin API request (no cache): a revoked key, or an owner who is no longer
    an Admin, is refused from the next request on."""
    problem = check_key_format(raw, ADMIN_PREFIX)
    if problem is not None:
        return AdminKeyCheck(failure="malformed", message=problem)
    key = (
        AdminKey.objects.select_related("organization", "owner")
        .filter(key_hash=hash_key(raw))
        .first()
    )
    if key is None:
        return AdminKeyCheck(
            failure="unknown",
            message="This admin key does not exist. Check that you copied the whole key.",
        )
    if key.revoked_at is not None:
        return AdminKeyCheck(key=key, failure="revoked", message="This admin key has been revoked.")
    membership = (
        Membership.objects.select_related("organization", "user")
        .filter(organization_id=key.organization_id, user_id=key.owner_id)
        .first()
    )
    if membership is None or not can(membership, "adminkeys.create"):
        return AdminKeyCheck(
            key=key,
            failure="not_admin",
            message="This admin key's owner is no longer an Admin of the organization.",
        )
    return AdminKeyCheck(key=key, membership=membership)
