"""Spending limit increase requests: a member asks for a higher monthly cap on one of their API
keys or on a workspace they use; an Admin or Billing-only member approves it (the cap is saved
as any limit edit is, `services.save_spend_limit`: hierarchy, versions, audit, the gateway told)
or denies it. Admins and Billing-only members are emailed the request; the requester the answer.
Served in the browser (billing views) and by the Admin API's spend_limit_increase_requests."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apikeys.models import ApiKey
from audit.services import record_event
from core import emails
from members.models import Membership
from members.policy import can
from members.selectors import workspaces_for
from orgs.models import Workspace

from . import money, services
from .models import (
    DEFAULT_THRESHOLDS,
    IncreaseStatus,
    LimitScope,
    SpendLimit,
    SpendLimitIncreaseRequest,
)
from .selectors import billing_recipients


def requests_visible_to(membership: Membership) -> QuerySet[SpendLimitIncreaseRequest]:
    """Admins and Billing-only members see every request of the organization; others their own."""
    rows = SpendLimitIncreaseRequest.objects.filter(
        organization_id=membership.organization_id
    ).select_related("requested_by", "resolved_by", "workspace", "api_key", "organization")
    if not can(membership, "billing.manage"):
        rows = rows.filter(requested_by_id=membership.user_id)
    return rows


def current_limit(request: SpendLimitIncreaseRequest) -> SpendLimit | None:
    target = (
        {"api_key_id": request.api_key_id}
        if request.scope == LimitScope.API_KEY
        else {"workspace_id": request.workspace_id}
    )
    return SpendLimit.objects.filter(
        organization_id=request.organization_id, scope=request.scope, **target
    ).first()


def _summary(request: SpendLimitIncreaseRequest, cap: int) -> dict:
    return {"cap": money.dollars(cap), "reason": request.reason}


def _email_after_commit(name: str, to, request: SpendLimitIncreaseRequest, **extra) -> None:
    if not to:
        return
    context = {"request": request, "organization": request.organization, **extra}
    transaction.on_commit(lambda: emails.send(emails.make_message(name, to, context)), robust=True)


@transaction.atomic
def request_increase(
    *,
    membership: Membership,
    cap_micros: int,
    reason: str = "",
    api_key: ApiKey | None = None,
    workspace: Workspace | None = None,
) -> SpendLimitIncreaseRequest:
    """Ask for `cap_micros` a month on one of the member's own keys or a workspace they use."""
    cap_micros = services.clean_cap(cap_micros)
    reason = (reason or "").strip()[:500]
    if (api_key is None) == (workspace is None):
        raise ValidationError("Choose one of your API keys or one of your workspaces.")
    if api_key is not None:
        if api_key.organization_id != membership.organization_id or (
            api_key.owner_id != membership.user_id
        ):
            raise ValidationError({"api_key": "Choose one of your own API keys."})
        if not api_key.is_active:
            raise ValidationError({"api_key": "This key no longer works: choose an active one."})
        scope = LimitScope.API_KEY
    else:
        if not workspaces_for(membership).filter(pk=workspace.pk).exists():
            raise ValidationError({"workspace": "Choose a workspace you use."})
        scope = LimitScope.WORKSPACE
    request = SpendLimitIncreaseRequest.objects.create(
        organization=membership.organization,
        requested_by=membership.user,
        scope=scope,
        api_key=api_key,
        workspace=workspace,
        requested_cap_micros=cap_micros,
        reason=reason,
    )
    record_event(
        action="billing.increase_requested",
        organization=membership.organization,
        actor=membership.user,
        target=request,
        target_label=request.target_label,
        after=_summary(request, cap_micros),
    )
    limit = current_limit(request)
    _email_after_commit(
        "billing-increase-requested",
        billing_recipients(membership.organization),
        request,
        current_cap=limit.monthly_cap_micros if limit else None,
    )
    return request


def _pending(request: SpendLimitIncreaseRequest) -> SpendLimitIncreaseRequest:
    request = (
        SpendLimitIncreaseRequest.objects.select_for_update(of=("self",))
        .select_related("organization", "workspace", "api_key", "requested_by")
        .get(pk=request.pk)
    )
    if request.status != IncreaseStatus.PENDING:
        raise ValidationError(f"This request was already {request.get_status_display().lower()}.")
    return request


def _resolve(request, status: str, actor, via: str) -> None:
    request.status = status
    request.resolved_at = timezone.now()
    request.resolved_by = actor if getattr(actor, "is_authenticated", False) else None
    request.resolved_via = via[:200]
    request.save()


@transaction.atomic
def approve_increase(
    *,
    request: SpendLimitIncreaseRequest,
    actor,
    cap_micros: int | None = None,
    via: str = "",
    notify: bool = True,
) -> SpendLimitIncreaseRequest:
    """Save the new cap (the requested one, or `cap_micros`) on the key or workspace: a limit
    that exists keeps its thresholds and recipients; a new one gets the defaults."""
    request = _pending(request)
    cap = request.requested_cap_micros if cap_micros is None else cap_micros
    limit = current_limit(request)
    services.save_spend_limit(
        organization=request.organization,
        actor=actor,
        enabled=True,
        cap_micros=cap,
        thresholds=limit.threshold_percents if limit else list(DEFAULT_THRESHOLDS),
        scope=request.scope,
        workspace=request.workspace,
        api_key=request.api_key,
        notify_billing_members=limit.notify_billing_members if limit else True,
        extra_recipients=limit.extra_recipients if limit else (),
        expected_version=limit.version if limit else None,
    )
    request.approved_cap_micros = cap
    _resolve(request, IncreaseStatus.APPROVED, actor, via)
    record_event(
        action="billing.increase_approved",
        organization=request.organization,
        actor=actor,
        target=request,
        target_label=request.target_label,
        before={"cap": money.dollars(request.requested_cap_micros)},
        after=_summary(request, cap),
    )
    if notify and request.requested_by is not None:
        _email_after_commit("billing-increase-resolved", request.requested_by.email, request)
    return request


@transaction.atomic
def deny_increase(
    *, request: SpendLimitIncreaseRequest, actor, via: str = "", notify: bool = True
) -> SpendLimitIncreaseRequest:
    request = _pending(request)
    _resolve(request, IncreaseStatus.DENIED, actor, via)
    record_event(
        action="billing.increase_denied",
        organization=request.organization,
        actor=actor,
        target=request,
        target_label=request.target_label,
        before=_summary(request, request.requested_cap_micros),
    )
    if notify and request.requested_by is not None:
        _email_after_commit("billing-increase-resolved", request.requested_by.email, request)
    return request
