"""`/v1/organizations/users`: the organization's members, with Anthropic's role names
(adminapi.roles). Changes go through members.services, as in the browser: the last Admin
cannot be demoted or removed, a removed member's keys are revoked, every change is audited."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from django.db.models import QuerySet
from pydantic import BaseModel, ConfigDict, Field

from members import services as member_services
from members.models import Membership

from .. import ids
from .. import roles as role_map
from ..api import AdminCall, endpoint
from ..errors import not_found
from ..pagination import ListParams, Page, page_of


class OrganizationUser(BaseModel):
    id: str
    added_at: dt.datetime
    email: str
    name: str
    role: Literal["admin", "developer", "billing"]
    type: Literal["user"] = "user"


class UserListParams(ListParams):
    email: str | None = Field(None, description="Only the user with this email address.")
    roles: list[role_map.ApiRole] = Field(default_factory=list, description="Only these roles.")


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: role_map.ApiRole


class UserDeleted(BaseModel):
    id: str
    type: Literal["user_deleted"] = "user_deleted"


def render_user(membership: Membership) -> OrganizationUser:
    user = membership.user
    return OrganizationUser(
        id=ids.encode("user", user.pk),
        added_at=membership.joined_at,
        email=user.email,
        name=user.name,
        role=role_map.TO_API[membership.role],
    )


def members_of(call: AdminCall) -> QuerySet[Membership]:
    return Membership.objects.filter(organization_id=call.organization.pk).select_related("user")


def membership_of(call: AdminCall, user_pk: int, user_id: str) -> Membership:
    membership = members_of(call).filter(user_id=user_pk).first()
    if membership is None:
        raise not_found("User", user_id)
    return membership


@endpoint(
    "GET",
    "/v1/organizations/users",
    summary="List users",
    query=UserListParams,
    response=Page[OrganizationUser],
    tag="Users",
)
def list_users(call: AdminCall) -> Page:
    params: UserListParams = call.query
    rows = members_of(call)
    if params.email:
        rows = rows.filter(user__email__iexact=params.email.strip())
    if params.roles:
        rows = rows.filter(role__in=[role_map.TO_OURS[role] for role in params.roles])
    return page_of(rows, params, kind="user", key="user_id", render=render_user)


@endpoint(
    "GET",
    "/v1/organizations/users/{user_id}",
    summary="Get a user",
    response=OrganizationUser,
    path_ids={"user_id": "user"},
    tag="Users",
)
def retrieve_user(call: AdminCall, user_id: int) -> OrganizationUser:
    return render_user(membership_of(call, user_id, ids.encode("user", user_id)))


@endpoint(
    "POST",
    "/v1/organizations/users/{user_id}",
    summary="Change a user's role",
    body=UserUpdate,
    response=OrganizationUser,
    path_ids={"user_id": "user"},
    tag="Users",
)
def update_user(call: AdminCall, user_id: int) -> OrganizationUser:
    membership = membership_of(call, user_id, ids.encode("user", user_id))
    membership = member_services.change_role(
        membership=membership, role=role_map.TO_OURS[call.body.role], actor=call.actor
    )
    return render_user(membership_of(call, user_id, ids.encode("user", user_id)))


@endpoint(
    "DELETE",
    "/v1/organizations/users/{user_id}",
    summary="Remove a user from the organization",
    response=UserDeleted,
    path_ids={"user_id": "user"},
    tag="Users",
)
def remove_user(call: AdminCall, user_id: int) -> UserDeleted:
    """Their API keys (and admin keys) are revoked with the membership, as in the browser."""
    membership = membership_of(call, user_id, ids.encode("user", user_id))
    member_services.remove_member(membership=membership, actor=call.actor)
    return UserDeleted(id=ids.encode("user", user_id))
