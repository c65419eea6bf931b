"""`/v1/organizations/workspaces` and their members, through orgs.services and
members.services (names unique per organization, the default workspace never archived,
archiving revokes the workspace's keys, audit).

Workspace roles map onto workspace access: an Admin is `workspace_admin` of every workspace
(nothing to add or remove); a Member with access is `workspace_developer`; a Billing-only member
with access is `workspace_billing`. A workspace role follows from the organization role, so
asking for another one is refused, naming the one that applies. As in Anthropic's API, the
default workspace is listed only with `include_default=true`."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Literal

from django.db.models import Q, QuerySet
from pydantic import BaseModel, ConfigDict, Field, field_validator

from members import services as member_services
from members.models import Membership, Role
from members.selectors import workspaces_for
from orgs import services as org_services
from orgs.models import Workspace

from .. import ids
from ..api import AdminCall, endpoint
from ..errors import invalid, invalid_plain, not_found
from ..pagination import ListParams, Page, page_of
from .users import members_of, membership_of

WorkspaceRole = Literal[
    "workspace_admin",
    "workspace_billing",
    "workspace_developer",
    "workspace_restricted_developer",
    "workspace_user",
]
ROLE_IN_WORKSPACE = {
    Role.ADMIN: "workspace_admin",
    Role.MEMBER: "workspace_developer",
    Role.BILLING: "workspace_billing",
}
NOT_STORED = "This console does not store {what}: leave it out."


class DataResidency(BaseModel):
    allowed_inference_geos: list[str] | Literal["unrestricted"] = "unrestricted"
    default_inference_geo: Literal["global", "us"] = "global"
    workspace_geo: Literal["us"] = "us"


class WorkspaceObject(BaseModel):
    id: str
    archived_at: dt.datetime | None
    compartment_id: str
    created_at: dt.datetime
    data_residency: DataResidency
    display_color: str
    external_key_id: str | None
    name: str
    tags: dict[str, str]
    type: Literal["workspace"] = "workspace"
    user_profile_id: str | None


class WorkspaceListParams(ListParams):
    include_archived: bool = Field(False, description="Archived workspaces too.")
    include_default: bool = Field(False, description="The default workspace too.")
    ids: list[str] = Field(default_factory=list, description="Only these workspaces.")


class _WorkspaceWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data_residency: dict | None = None
    display_color: str | None = None
    external_key_id: str | None = None
    tags: dict[str, str | None] | None = None
    user_profile_id: str | None = None

    @field_validator("data_residency", "external_key_id", "user_profile_id", "display_color")
    @classmethod
    def not_stored(cls, value, info):
        if value:
            raise ValueError(NOT_STORED.format(what=info.field_name.replace("_", " ") + "s"))
        return value

    @field_validator("tags")
    @classmethod
    def no_tags(cls, value):
        if value:
            raise ValueError(NOT_STORED.format(what="workspace tags"))
        return value


class WorkspaceCreate(_WorkspaceWrite):
    name: str = Field(min_length=1, max_length=64)


class WorkspaceUpdate(_WorkspaceWrite):
    name: str | None = Field(None, min_length=1, max_length=64)


class WorkspaceMember(BaseModel):
    type: Literal["workspace_member"] = "workspace_member"
    user_id: str
    workspace_id: str
    workspace_role: WorkspaceRole


class MemberAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str
    workspace_role: WorkspaceRole


class MemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workspace_role: WorkspaceRole


class MemberRemoved(BaseModel):
    type: Literal["workspace_member_deleted"] = "workspace_member_deleted"
    user_id: str
    workspace_id: str


def display_color(workspace: Workspace) -> str:
    return "#" + hashlib.sha256(f"workspace {workspace.pk}".encode()).hexdigest()[:6]


def render_workspace(workspace: Workspace) -> WorkspaceObject:
    workspace_id = ids.encode("workspace", workspace.pk)
    return WorkspaceObject(
        id=workspace_id,
        archived_at=workspace.archived_at,
        compartment_id=workspace_id,
        created_at=workspace.created_at,
        data_residency=DataResidency(),
        display_color=display_color(workspace),
        external_key_id=None,
        name=workspace.name,
        tags={},
        user_profile_id=None,
    )


def workspaces_of(call: AdminCall) -> QuerySet[Workspace]:
    return Workspace.objects.filter(organization_id=call.organization.pk)


def workspace_of(call: AdminCall, workspace_pk: int) -> Workspace:
    workspace = workspaces_of(call).filter(pk=workspace_pk).first()
    if workspace is None:
        raise not_found("Workspace", ids.encode("workspace", workspace_pk))
    return workspace


@endpoint(
    "GET",
    "/v1/organizations/workspaces",
    summary="List workspaces",
    query=WorkspaceListParams,
    response=Page[WorkspaceObject],
    tag="Workspaces",
)
def list_workspaces(call: AdminCall) -> Page:
    params: WorkspaceListParams = call.query
    rows = workspaces_of(call)
    if not params.include_archived:
        rows = rows.filter(archived_at__isnull=True)
    if not params.include_default:
        rows = rows.filter(is_default=False)
    if params.ids:
        wanted = []
        for index, value in enumerate(params.ids):
            pk = ids.decode("workspace", value)
            if pk is None:
                raise invalid(f"ids[{index}]", f"{value!r} is not a wrkspc_… id.")
            wanted.append(pk)
        rows = rows.filter(pk__in=wanted)
    return page_of(rows, params, kind="workspace", key="pk", render=render_workspace)


@endpoint(
    "POST",
    "/v1/organizations/workspaces",
    summary="Create a workspace",
    body=WorkspaceCreate,
    response=WorkspaceObject,
    tag="Workspaces",
)
def create_workspace(call: AdminCall) -> WorkspaceObject:
    workspace = org_services.create_workspace(
        organization=call.organization, actor=call.actor, name=call.body.name
    )
    return render_workspace(workspace)


@endpoint(
    "GET",
    "/v1/organizations/workspaces/{workspace_id}",
    summary="Get a workspace",
    response=WorkspaceObject,
    path_ids={"workspace_id": "workspace"},
    tag="Workspaces",
)
def retrieve_workspace(call: AdminCall, workspace_id: int) -> WorkspaceObject:
    return render_workspace(workspace_of(call, workspace_id))


@endpoint(
    "POST",
    "/v1/organizations/workspaces/{workspace_id}",
    summary="Rename a workspace",
    body=WorkspaceUpdate,
    response=WorkspaceObject,
    path_ids={"workspace_id": "workspace"},
    tag="Workspaces",
)
def update_workspace(call: AdminCall, workspace_id: int) -> WorkspaceObject:
    workspace = workspace_of(call, workspace_id)
    if call.body.name is not None:
        workspace = org_services.rename_workspace(
            workspace=workspace, actor=call.actor, name=call.body.name
        )
    return render_workspace(workspace)


@endpoint(
    "POST",
    "/v1/organizations/workspaces/{workspace_id}/archive",
    summary="Archive a workspace (its API keys are revoked)",
    response=WorkspaceObject,
    path_ids={"workspace_id": "workspace"},
    tag="Workspaces",
)
def archive_workspace(call: AdminCall, workspace_id: int) -> WorkspaceObject:
    workspace = workspace_of(call, workspace_id)
    archived = org_services.archive_workspace(workspace=workspace, actor=call.actor)
    return render_workspace(archived.workspace)


# -- members of a workspace ----------------------------------------------------------------------


def members_in(call: AdminCall, workspace: Workspace) -> QuerySet[Membership]:
    """Who reaches the workspace: every Admin, and the others linked to it."""
    return members_of(call).filter(
        Q(role=Role.ADMIN) | Q(workspacemembership__workspace_id=workspace.pk)
    )


def render_member(membership: Membership, workspace: Workspace) -> WorkspaceMember:
    return WorkspaceMember(
        user_id=ids.encode("user", membership.user_id),
        workspace_id=ids.encode("workspace", workspace.pk),
        workspace_role=ROLE_IN_WORKSPACE[membership.role],
    )


def check_workspace_role(membership: Membership, wanted: str) -> None:
    implied = ROLE_IN_WORKSPACE[membership.role]
    if wanted != implied:
        raise invalid(
            "workspace_role",
            f"In this console the workspace role follows the organization role: this user's "
            f"is {implied}. Change the user's organization role to change it.",
        )


def member_in(call: AdminCall, workspace: Workspace, user_pk: int) -> Membership:
    membership = members_in(call, workspace).filter(user_id=user_pk).first()
    if membership is None:
        raise not_found("Workspace member", ids.encode("user", user_pk))
    return membership


def linked_workspaces(membership: Membership) -> list[Workspace]:
    return list(workspaces_for(membership).filter(archived_at__isnull=True))


@endpoint(
    "GET",
    "/v1/organizations/workspaces/{workspace_id}/members",
    summary="List the members of a workspace",
    query=ListParams,
    response=Page[WorkspaceMember],
    path_ids={"workspace_id": "workspace"},
    tag="Workspace members",
)
def list_workspace_members(call: AdminCall, workspace_id: int) -> Page:
    workspace = workspace_of(call, workspace_id)
    return page_of(
        members_in(call, workspace).distinct(),
        call.query,
        kind="user",
        key="user_id",
        render=lambda membership: render_member(membership, workspace),
        id_of=lambda member: member.user_id,
    )


@endpoint(
    "POST",
    "/v1/organizations/workspaces/{workspace_id}/members",
    summary="Add a member to a workspace",
    body=MemberAdd,
    response=WorkspaceMember,
    path_ids={"workspace_id": "workspace"},
    tag="Workspace members",
)
def add_workspace_member(call: AdminCall, workspace_id: int) -> WorkspaceMember:
    workspace = workspace_of(call, workspace_id)
    user_pk = ids.decode("user", call.body.user_id)
    if user_pk is None:
        raise invalid("user_id", f"{call.body.user_id!r} is not a user_… id.")
    membership = membership_of(call, user_pk, call.body.user_id)
    if membership.role == Role.ADMIN:
        raise invalid_plain("Admins are in every workspace (workspace_admin): nothing to add.")
    check_workspace_role(membership, call.body.workspace_role)
    current = linked_workspaces(membership)
    if workspace in current:
        raise invalid_plain(f"{membership.user.email} is already a member of {workspace.name}.")
    member_services.set_member_workspaces(
        membership=membership, workspaces=[*current, workspace], actor=call.actor
    )
    return render_member(membership, workspace)


@endpoint(
    "GET",
    "/v1/organizations/workspaces/{workspace_id}/members/{user_id}",
    summary="Get a member of a workspace",
    response=WorkspaceMember,
    path_ids={"workspace_id": "workspace", "user_id": "user"},
    tag="Workspace members",
)
def retrieve_workspace_member(call: AdminCall, workspace_id: int, user_id: int) -> WorkspaceMember:
    workspace = workspace_of(call, workspace_id)
    return render_member(member_in(call, workspace, user_id), workspace)


@endpoint(
    "POST",
    "/v1/organizations/workspaces/{workspace_id}/members/{user_id}",
    summary="Change a workspace member's role (it follows the organization role)",
    body=MemberUpdate,
    response=WorkspaceMember,
    path_ids={"workspace_id": "workspace", "user_id": "user"},
    tag="Workspace members",
)
def update_workspace_member(call: AdminCall, workspace_id: int, user_id: int) -> WorkspaceMember:
    workspace = workspace_of(call, workspace_id)
    membership = member_in(call, workspace, user_id)
    check_workspace_role(membership, call.body.workspace_role)
    return render_member(membership, workspace)


@endpoint(
    "DELETE",
    "/v1/organizations/workspaces/{workspace_id}/members/{user_id}",
    summary="Remove a member from a workspace (their keys there are revoked)",
    response=MemberRemoved,
    path_ids={"workspace_id": "workspace", "user_id": "user"},
    tag="Workspace members",
)
def remove_workspace_member(call: AdminCall, workspace_id: int, user_id: int) -> MemberRemoved:
    workspace = workspace_of(call, workspace_id)
    membership = member_in(call, workspace, user_id)
    if membership.role == Role.ADMIN:
        raise invalid_plain(
            "Admins are in every workspace: change the user's organization role first."
        )
    remaining = [w for w in linked_workspaces(membership) if w.pk != workspace.pk]
    member_services.set_member_workspaces(
        membership=membership, workspaces=remaining, actor=call.actor
    )
    return MemberRemoved(
        user_id=ids.encode("user", user_id), workspace_id=ids.encode("workspace", workspace_id)
    )
