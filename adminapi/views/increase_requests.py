"""`/v1/organizations/spend_limit_increase_requests`: the requests members make in the console
(Billing → Limit requests) for a higher monthly cap on one of their keys or workspaces, listed,
approved (the new cap saved through billing's services) or denied through
billing.increase_requests, as in the browser. Besides Anthropic's fields, each request says what
it is for (`scope`) and what was asked (`requested_amount`, US cents)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from billing import increase_requests as service
from billing.models import LimitScope, SpendLimit, SpendLimitIncreaseRequest

from .. import ids
from ..api import AdminCall, endpoint, key_label
from ..errors import not_found
from ..pagination import decoded_ids, page_token, token_page
from .spend_limits import OrganizationScope, UserActor, WorkspaceScope, cents_whole

Status = Literal["approved", "denied", "pending"]


class ApiKeyScope(BaseModel):
    type: Literal["api_key"] = "api_key"
    api_key_id: str


class SpendLimitObject(BaseModel):
    id: str
    amount: str | None
    created_at: dt.datetime
    currency: Literal["USD"] = "USD"
    is_enabled: bool
    period: Literal["monthly"] = "monthly"
    scope: OrganizationScope | WorkspaceScope | ApiKeyScope
    type: Literal["spend_limit"] = "spend_limit"
    updated_at: dt.datetime


class IncreaseRequestObject(BaseModel):
    id: str
    actor: UserActor | None
    created_at: dt.datetime
    period: Literal["monthly"] = "monthly"
    resolved_at: dt.datetime | None
    resolved_by: UserActor | None
    spend_summary: None = None
    status: Status
    type: Literal["spend_limit_increase_request"] = "spend_limit_increase_request"
    scope: WorkspaceScope | ApiKeyScope
    requested_amount: str
    reason: str


class ApprovedRequest(IncreaseRequestObject):
    spend_limit: SpendLimitObject | None


class IncreaseRequestPage(BaseModel):
    data: list[IncreaseRequestObject]
    next_page: str | None


class IncreaseListParams(BaseModel):
    limit: int = Field(20, ge=1, le=1000, description="Requests per page.")
    page: str | None = Field(None, description="next_page of the previous answer.")
    status: list[Status] = Field(default_factory=list, description="Only these statuses.")
    actor_ids: list[str] = Field(default_factory=list, description="Only these members' requests.")


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: str = Field(description="The monthly cap to set, in whole US cents.", max_length=15)
    period: Literal["monthly"] | None = None
    suppress_notification: bool = False

    @field_validator("amount")
    @classmethod
    def whole_cents(cls, value: str) -> str:
        if not value.isascii() or not value.isdigit() or int(value) <= 0:
            raise ValueError('Give the cap in whole US cents, e.g. "50000" for $500.00.')
        return value


class DenyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suppress_notification: bool = False


def actor(user) -> UserActor | None:
    if user is None:
        return None
    return UserActor(
        user_id=ids.encode("user", user.pk), email_address=user.email, name=user.name or None
    )


def target_scope(row) -> WorkspaceScope | ApiKeyScope:
    if row.scope == LimitScope.API_KEY:
        return ApiKeyScope(api_key_id=ids.encode("api_key", row.api_key_id))
    return WorkspaceScope(workspace_id=ids.encode("workspace", row.workspace_id))


def render_request(row: SpendLimitIncreaseRequest, cls=IncreaseRequestObject, **extra):
    return cls(
        id=ids.encode("increase_request", row.pk),
        actor=actor(row.requested_by),
        created_at=row.created_at,
        resolved_at=row.resolved_at,
        resolved_by=actor(row.resolved_by),
        status=row.status,
        scope=target_scope(row),
        requested_amount=cents_whole(row.requested_cap_micros),
        reason=row.reason,
        **extra,
    )


def render_limit(limit: SpendLimit | None) -> SpendLimitObject | None:
    if limit is None:
        return None
    scope: OrganizationScope | WorkspaceScope | ApiKeyScope = OrganizationScope()
    if limit.scope == LimitScope.WORKSPACE:
        scope = WorkspaceScope(workspace_id=ids.encode("workspace", limit.workspace_id))
    elif limit.scope == LimitScope.API_KEY:
        scope = ApiKeyScope(api_key_id=ids.encode("api_key", limit.api_key_id))
    return SpendLimitObject(
        id=ids.encode("spend_limit", limit.pk),
        amount=cents_whole(limit.monthly_cap_micros),
        created_at=limit.created_at,
        is_enabled=limit.enabled,
        scope=scope,
        updated_at=limit.updated_at,
    )


def requests_of(call: AdminCall):
    return service.requests_visible_to(call.membership)


def request_of(call: AdminCall, pk: int) -> SpendLimitIncreaseRequest:
    row = requests_of(call).filter(pk=pk).first()
    if row is None:
        raise not_found("Spend limit increase request", ids.encode("increase_request", pk))
    return row


PATH_IDS = {"spend_limit_increase_request_id": "increase_request"}
ONE = "/v1/organizations/spend_limit_increase_requests/{spend_limit_increase_request_id}"


@endpoint(
    "GET",
    "/v1/organizations/spend_limit_increase_requests",
    summary="List spending limit increase requests, newest first",
    query=IncreaseListParams,
    response=IncreaseRequestPage,
    tag="Spend limits",
)
def list_increase_requests(call: AdminCall) -> IncreaseRequestPage:
    params: IncreaseListParams = call.query
    rows = requests_of(call).order_by("-pk")
    if params.status:
        rows = rows.filter(status__in=params.status)
    if params.actor_ids:
        rows = rows.filter(requested_by_id__in=decoded_ids("user", "actor_ids", params.actor_ids))
    if params.page is not None:
        rows = rows.filter(pk__lt=page_token("increase_request", params.page))
    found, next_page = token_page(rows, params.limit, kind="increase_request", key="pk")
    return IncreaseRequestPage(
        data=[render_request(row) for row in found],
        next_page=next_page,
    )


@endpoint(
    "GET",
    ONE,
    summary="Get a spending limit increase request",
    response=IncreaseRequestObject,
    path_ids=PATH_IDS,
    tag="Spend limits",
)
def retrieve_increase_request(call: AdminCall, spend_limit_increase_request_id: int):
    return render_request(request_of(call, spend_limit_increase_request_id))


@endpoint(
    "POST",
    ONE + "/approve",
    summary="Approve a request: the cap (`amount`, cents) is set on its key or workspace",
    body=ApproveBody,
    response=ApprovedRequest,
    path_ids=PATH_IDS,
    tag="Spend limits",
)
def approve_increase_request(call: AdminCall, spend_limit_increase_request_id: int):
    row = request_of(call, spend_limit_increase_request_id)
    row = service.approve_increase(
        request=row,
        actor=call.actor,
        cap_micros=int(call.body.amount) * 10_000,
        via=key_label(call.check),
        notify=not call.body.suppress_notification,
    )
    row = request_of(call, spend_limit_increase_request_id)
    return render_request(
        row, ApprovedRequest, spend_limit=render_limit(service.current_limit(row))
    )


@endpoint(
    "POST",
    ONE + "/deny",
    summary="Deny a request (the limit stays as it is)",
    body=DenyBody,
    response=IncreaseRequestObject,
    path_ids=PATH_IDS,
    tag="Spend limits",
)
def deny_increase_request(call: AdminCall, spend_limit_increase_request_id: int):
    row = request_of(call, spend_limit_increase_request_id)
    service.deny_increase(
        request=row,
        actor=call.actor,
        via=key_label(call.check),
        notify=not call.body.suppress_notification,
    )
    return render_request(request_of(call, spend_limit_increase_request_id))
