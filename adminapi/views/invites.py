"""`/v1/organizations/invites`: invitations, through members.services (member limit, one
pending invitation per address, the email with the link, audit). A revoked invitation is
Anthropic's deleted one: it is no longer listed or found."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from django.db.models import Q, QuerySet
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field, field_validator

from members import services as member_services
from members.models import Invitation, InvitationStatus

from .. import ids
from .. import roles as role_map
from ..api import AdminCall, endpoint
from ..errors import not_found
from ..pagination import ListParams, Page, page_of

InviteStatus = Literal["accepted", "expired", "pending"]


class OrganizationInvite(BaseModel):
    id: str
    accepted_at: dt.datetime | None
    email: str
    expires_at: dt.datetime
    invited_at: dt.datetime
    rbac_group_ids: list[str]
    role: Literal["admin", "developer", "billing"]
    status: Literal["accepted", "deleted", "expired", "pending"]
    type: Literal["invite"] = "invite"


class InviteListParams(ListParams):
    email: str | None = Field(None, description="Only invitations of this email address.")
    roles: list[role_map.ApiRole] = Field(default_factory=list, description="Only these roles.")
    statuses: list[InviteStatus] = Field(default_factory=list, description="Only these statuses.")


class InviteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=254)
    role: role_map.ApiRole
    rbac_group_ids: list[str] = Field(default_factory=list, max_length=0)

    @field_validator("rbac_group_ids")
    @classmethod
    def no_groups(cls, value: list[str]) -> list[str]:
        if value:
            raise ValueError("This console has no RBAC groups: leave rbac_group_ids empty.")
        return value


class InviteDeleted(BaseModel):
    id: str
    type: Literal["invite_deleted"] = "invite_deleted"


def status_of(invitation: Invitation, now: dt.datetime) -> str:
    if invitation.status == InvitationStatus.ACCEPTED:
        return "accepted"
    if invitation.status == InvitationStatus.REVOKED:
        return "deleted"
    if invitation.status == InvitationStatus.EXPIRED or invitation.expires_at <= now:
        return "expired"
    return "pending"


def render_invite(invitation: Invitation, now: dt.datetime | None = None) -> OrganizationInvite:
    now = now or timezone.now()
    status = status_of(invitation, now)
    return OrganizationInvite(
        id=ids.encode("invite", invitation.pk),
        accepted_at=invitation.closed_at if status == "accepted" else None,
        email=invitation.email,
        expires_at=invitation.expires_at,
        invited_at=invitation.sent_at,
        rbac_group_ids=[],
        role=role_map.TO_API[invitation.role],
        status=status,
    )


def invitations_of(call: AdminCall) -> QuerySet[Invitation]:
    return Invitation.objects.filter(organization_id=call.organization.pk).exclude(
        status=InvitationStatus.REVOKED
    )


def invitation_of(call: AdminCall, invite_pk: int) -> Invitation:
    invitation = invitations_of(call).filter(pk=invite_pk).first()
    if invitation is None:
        raise not_found("Invite", ids.encode("invite", invite_pk))
    return invitation


def with_statuses(rows: QuerySet[Invitation], statuses: list[str], now) -> QuerySet[Invitation]:
    """The statuses as `status_of` computes them (a pending one past its expiry is expired)."""
    wanted = Q(pk__in=[])
    if "accepted" in statuses:
        wanted |= Q(status=InvitationStatus.ACCEPTED)
    if "pending" in statuses:
        wanted |= Q(status=InvitationStatus.PENDING, expires_at__gt=now)
    if "expired" in statuses:
        wanted |= Q(status=InvitationStatus.EXPIRED) | Q(
            status=InvitationStatus.PENDING, expires_at__lte=now
        )
    return rows.filter(wanted)


@endpoint(
    "GET",
    "/v1/organizations/invites",
    summary="List invites",
    query=InviteListParams,
    response=Page[OrganizationInvite],
    tag="Invites",
)
def list_invites(call: AdminCall) -> Page:
    params: InviteListParams = call.query
    now = timezone.now()
    rows = invitations_of(call)
    if params.email:
        rows = rows.filter(email__iexact=params.email.strip())
    if params.roles:
        rows = rows.filter(role__in=[role_map.TO_OURS[role] for role in params.roles])
    if params.statuses:
        rows = with_statuses(rows, params.statuses, now)
    return page_of(
        rows, params, kind="invite", key="pk", render=lambda row: render_invite(row, now)
    )


@endpoint(
    "POST",
    "/v1/organizations/invites",
    summary="Invite someone to the organization",
    body=InviteCreate,
    response=OrganizationInvite,
    tag="Invites",
)
def create_invite(call: AdminCall) -> OrganizationInvite:
    """The invitation email goes out as from the browser; the member limit counts pending
    invitations."""
    invitation = member_services.invite_member(
        organization=call.organization,
        email=call.body.email,
        role=role_map.TO_OURS[call.body.role],
        actor=call.actor,
    )
    return render_invite(invitation)


@endpoint(
    "GET",
    "/v1/organizations/invites/{invite_id}",
    summary="Get an invite",
    response=OrganizationInvite,
    path_ids={"invite_id": "invite"},
    tag="Invites",
)
def retrieve_invite(call: AdminCall, invite_id: int) -> OrganizationInvite:
    return render_invite(invitation_of(call, invite_id))


@endpoint(
    "DELETE",
    "/v1/organizations/invites/{invite_id}",
    summary="Delete (revoke) a pending invite",
    response=InviteDeleted,
    path_ids={"invite_id": "invite"},
    tag="Invites",
)
def delete_invite(call: AdminCall, invite_id: int) -> InviteDeleted:
    invitation = invitation_of(call, invite_id)
    member_services.revoke_invitation(invitation=invitation, actor=call.actor)
    return InviteDeleted(id=ids.encode("invite", invite_id))
