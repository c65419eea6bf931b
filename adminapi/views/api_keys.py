"""`/v1/organizations/api_keys`: the organization's console keys (`csk_…`), through
apikeys.services, plus `POST /v1/organizations/api_keys`, our extension (Anthropic's Admin API
cannot create keys): the new key is in the answer's `key` field, once, and nowhere else.

Statuses: `active` and `expired` are ours; a revoked key is Anthropic's `inactive`. Setting
`status: inactive` revokes the key (refused at the gateway within a second on every process,
apikeys.verification); a revoked key cannot be made active again here, and this console has
no `archived` keys (the filter finds none, the update is refused with the reason)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from django.db.models import QuerySet
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field

from apikeys import selectors as key_selectors
from apikeys import services as key_services
from apikeys.models import ApiKey, KeyStatus
from orgs.selectors import default_workspace

from .. import ids
from ..api import AdminCall, endpoint
from ..errors import invalid, not_found
from ..pagination import ListParams, Page, page_of
from .users import membership_of
from .workspaces import workspace_of

ApiKeyStatus = Literal["active", "archived", "expired", "inactive"]
TO_API_STATUS = {
    KeyStatus.ACTIVE: "active",
    KeyStatus.EXPIRED: "expired",
    KeyStatus.REVOKED: "inactive",
}


class CreatedBy(BaseModel):
    id: str
    type: Literal["user"] = "user"


class WorkspaceScope(BaseModel):
    type: Literal["workspace"] = "workspace"
    workspace_id: str


class ApiKeyObject(BaseModel):
    id: str
    created_at: dt.datetime
    created_by: CreatedBy | None
    expires_at: dt.datetime | None
    name: str
    partial_key_hint: str | None
    principal: None = None
    scope: WorkspaceScope
    status: ApiKeyStatus
    type: Literal["api_key"] = "api_key"
    workspace_id: str


class CreatedApiKey(ApiKeyObject):
    key: str = Field(description="The key itself, shown once: store it now.")


class ApiKeyListParams(ListParams):
    status: ApiKeyStatus | None = Field(None, description="Only keys with this status.")
    workspace_id: str | None = Field(None, description="Only keys of this workspace.")
    created_by_user_id: str | None = Field(None, description="Only keys this user created.")


class ApiKeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=100)
    status: ApiKeyStatus | None = None


class ApiKeyCreate(BaseModel):
    """Our extension. The key is owned by `user_id` (default: the admin key's Admin), who must
    be allowed to hold keys in the workspace (default: the organization's default one)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    workspace_id: str | None = None
    user_id: str | None = None
    expires_on: dt.date | None = Field(None, description="Works through the end of this day.")


def render_key(key: ApiKey, now: dt.datetime | None = None) -> ApiKeyObject:
    workspace_id = ids.encode("workspace", key.workspace_id)
    return ApiKeyObject(
        id=ids.encode("api_key", key.pk),
        created_at=key.created_at,
        created_by=CreatedBy(id=ids.encode("user", key.owner_id)) if key.owner_id else None,
        expires_at=key.expires_at,
        name=key.name,
        partial_key_hint=key.display,
        scope=WorkspaceScope(workspace_id=workspace_id),
        status=TO_API_STATUS[key.status_at(now or timezone.now())],
        workspace_id=workspace_id,
    )


def keys_of(call: AdminCall) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization_id=call.organization.pk)


def key_of(call: AdminCall, key_pk: int) -> ApiKey:
    key = keys_of(call).filter(pk=key_pk).first()
    if key is None:
        raise not_found("API key", ids.encode("api_key", key_pk))
    return key


def _pk(kind: str, field: str, value: str) -> int:
    pk = ids.decode(kind, value)
    if pk is None:
        raise invalid(field, f"{value!r} is not a {ids.PREFIXES[kind]}… id.")
    return pk


@endpoint(
    "GET",
    "/v1/organizations/api_keys",
    summary="List API keys",
    query=ApiKeyListParams,
    response=Page[ApiKeyObject],
    tag="API keys",
)
def list_api_keys(call: AdminCall) -> Page:
    params: ApiKeyListParams = call.query
    now = timezone.now()
    rows = keys_of(call)
    if params.status == "archived":
        rows = rows.none()
    elif params.status is not None:
        ours = {api: status for status, api in TO_API_STATUS.items()}[params.status]
        rows = key_selectors.with_status(rows, ours, now)
    if params.workspace_id is not None:
        rows = rows.filter(workspace_id=_pk("workspace", "workspace_id", params.workspace_id))
    if params.created_by_user_id is not None:
        owner = _pk("user", "created_by_user_id", params.created_by_user_id)
        rows = rows.filter(owner_id=owner)
    return page_of(rows, params, kind="api_key", key="pk", render=lambda key: render_key(key, now))


@endpoint(
    "GET",
    "/v1/organizations/api_keys/{api_key_id}",
    summary="Get an API key",
    response=ApiKeyObject,
    path_ids={"api_key_id": "api_key"},
    tag="API keys",
)
def retrieve_api_key(call: AdminCall, api_key_id: int) -> ApiKeyObject:
    return render_key(key_of(call, api_key_id))


@endpoint(
    "POST",
    "/v1/organizations/api_keys/{api_key_id}",
    summary="Rename an API key, or revoke it (status inactive)",
    body=ApiKeyUpdate,
    response=ApiKeyObject,
    path_ids={"api_key_id": "api_key"},
    tag="API keys",
)
def update_api_key(call: AdminCall, api_key_id: int) -> ApiKeyObject:
    key = key_of(call, api_key_id)
    status = call.body.status
    if status == "archived":
        raise invalid(
            "status",
            "This console has no archived keys: set status inactive to revoke the key.",
        )
    if status == "expired":
        raise invalid("status", "A key expires on its date; set status inactive to revoke it.")
    if status == "active" and key.status != KeyStatus.ACTIVE:
        raise invalid(
            "status",
            f"This key is {TO_API_STATUS[key.status]} and cannot be made active again: "
            "create a new key (POST /v1/organizations/api_keys).",
        )
    if call.body.name is not None:
        key = key_services.rename_api_key(key=key, name=call.body.name, actor=call.actor)
    if status == "inactive" and key.revoked_at is None:
        key = key_services.revoke_api_key(key=key, actor=call.actor, reason="Admin API")
    return render_key(key_of(call, api_key_id))


@endpoint(
    "POST",
    "/v1/organizations/api_keys",
    summary="Create an API key (this console's extension; the key is returned once)",
    body=ApiKeyCreate,
    response=CreatedApiKey,
    tag="API keys",
)
def create_api_key(call: AdminCall) -> CreatedApiKey:
    """Anthropic's Admin API cannot create keys; this console's can. The answer's `key` is the
    only copy: the console stores its hash."""
    body: ApiKeyCreate = call.body
    membership = call.membership
    if body.user_id is not None:
        membership = membership_of(call, _pk("user", "user_id", body.user_id), body.user_id)
    if body.workspace_id is not None:
        workspace = workspace_of(call, _pk("workspace", "workspace_id", body.workspace_id))
    else:
        workspace = default_workspace(call.organization)
    issued = key_services.create_api_key(
        membership=membership,
        workspace=workspace,
        name=body.name,
        expires_on=body.expires_on,
        actor=call.actor,
    )
    return CreatedApiKey(**render_key(issued.key).model_dump(), key=issued.plaintext)
