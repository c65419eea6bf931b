"""Every billing write that a person makes: spending limits, the billing contact, payment
methods. Each validates, writes in one transaction and records its audit event. Credits are in
billing/credits.py, invoices and payments in billing/invoicing.py, alerts in billing/alerts.py.

Limits are edited with optimistic concurrency: the form carries the `version` it was shown, and
the write is refused if the row has moved on since (two finance users editing one limit at
once: the second is told, nothing is lost). Every write to a limit is announced to the gateway
processes (`spend.limits_changed`), so a raised or disabled cap re-opens at once everywhere.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from audit.services import record_event
from orgs.models import Organization, Workspace

from . import alerts, money
from .cardguard import MESSAGE as CARD_MESSAGE
from .cardguard import contains_card_number
from .models import (
    BillingProfile,
    LimitScope,
    PaymentMethod,
    PaymentMethodKind,
    SpendLimit,
)

MAX_CAP_MICROS = 10_000_000 * money.MICROS  # $10 million a month: anything above is a typo
MAX_THRESHOLDS = 10
MAX_RECIPIENTS = 20


def announce_limits_changed(organization_id: int) -> None:
    from . import spend

    spend.limits_changed.announce(str(organization_id))


def _lock_org(organization: Organization) -> Organization:
    # One writer of an organization's limits at a time: the checks between a workspace's cap
    # and the organization's must see each other's writes.
    return Organization.objects.select_for_update().get(pk=organization.pk)


def clean_thresholds(values) -> list[int]:
    try:
        thresholds = [int(v) for v in values]
    except (TypeError, ValueError):
        raise ValidationError(
            {"thresholds": "Enter whole percentages, like 50, 80, 100."}
        ) from None
    if not thresholds:
        raise ValidationError({"thresholds": "Give at least one threshold, like 50, 80, 100."})
    if len(thresholds) > MAX_THRESHOLDS:
        raise ValidationError({"thresholds": f"Use at most {MAX_THRESHOLDS} thresholds."})
    if any(t < 1 or t > 100 for t in thresholds):
        raise ValidationError({"thresholds": "Each threshold is a percentage from 1 to 100."})
    if len(set(thresholds)) != len(thresholds):
        raise ValidationError({"thresholds": "Each threshold may appear once."})
    if thresholds != sorted(thresholds):
        raise ValidationError({"thresholds": "List the thresholds from lowest to highest."})
    return thresholds


def clean_cap(cap_micros: int) -> int:
    if cap_micros <= 0:
        raise ValidationError({"cap": "Enter a monthly cap above zero."})
    if cap_micros > MAX_CAP_MICROS:
        raise ValidationError(
            {"cap": f"Enter a monthly cap of at most {money.dollars(MAX_CAP_MICROS)}."}
        )
    if cap_micros % 10_000:
        raise ValidationError({"cap": "Enter the cap in dollars and cents."})
    return cap_micros


def clean_recipients(values) -> list[str]:
    found: list[str] = []
    for value in values:
        email = value.strip().lower()
        if not email:
            continue
        try:
            validate_email(email)
        except ValidationError:
            raise ValidationError(
                {"extra_recipients": f"{email} is not an email address."}
            ) from None
        if email not in found:
            found.append(email)
    if len(found) > MAX_RECIPIENTS:
        raise ValidationError({"extra_recipients": f"Add at most {MAX_RECIPIENTS} addresses."})
    return found


def limit_summary(limit: SpendLimit | None) -> dict | None:
    if limit is None:
        return None
    return {
        "scope": limit.scope,
        "target": limit.target_label,
        "enabled": limit.enabled,
        "monthly_cap": money.dollars(limit.monthly_cap_micros),
        "thresholds": limit.thresholds,
        "notify_billing_members": limit.notify_billing_members,
        "extra_recipients": list(limit.extra_recipients or ()),
    }


def _stale(limit: SpendLimit | None) -> ValidationError:
    if limit is None:
        return ValidationError(
            "This limit was removed by someone else while you were editing it. Nothing was "
            "saved: review the limits and try again.",
            code="stale",
        )
    who = limit.updated_by.email if limit.updated_by_id else "someone else"
    when = timezone.localtime(limit.updated_at, limit.organization.tzinfo)
    return ValidationError(
        f"{who} changed this limit at {when:%H:%M:%S} ({when.tzname()}) while you were editing "
        "it. Nothing was saved: the form now shows their values; make your change again.",
        code="stale",
    )


def _target_filter(scope: str, workspace: Workspace | None, api_key) -> dict:
    if scope == LimitScope.WORKSPACE:
        return {"scope": scope, "workspace": workspace}
    if scope == LimitScope.API_KEY:
        return {"scope": scope, "api_key": api_key}
    return {"scope": LimitScope.ORGANIZATION}


def _check_hierarchy(organization, scope, workspace, api_key, cap: int) -> None:
    """A workspace's or key's cap may not exceed the organization's (nor a key's its
    workspace's); the organization's may not go below one of theirs."""
    enabled = SpendLimit.objects.filter(organization=organization, enabled=True)
    if scope == LimitScope.ORGANIZATION:
        above = [
            limit
            for limit in enabled.exclude(scope=LimitScope.ORGANIZATION).select_related(
                "workspace", "api_key"
            )
            if limit.monthly_cap_micros > cap
        ]
        if above:
            names = ", ".join(
                f"{limit.target_label} ({money.dollars(limit.monthly_cap_micros)})"
                for limit in above[:5]
            )
            raise ValidationError(
                {
                    "cap": f"Lower these caps first, or choose a higher one: {names}. A workspace "
                    "or key may not have a higher cap than the organization."
                }
            )
        return
    org_limit = enabled.filter(scope=LimitScope.ORGANIZATION).first()
    if org_limit is not None and cap > org_limit.monthly_cap_micros:
        what = "A workspace's" if scope == LimitScope.WORKSPACE else "An API key's"
        raise ValidationError(
            {
                "cap": f"{what} cap may not exceed the organization's monthly cap of "
                f"{money.dollars(org_limit.monthly_cap_micros)}."
            }
        )
    if scope == LimitScope.API_KEY:
        ws_limit = enabled.filter(scope=LimitScope.WORKSPACE, workspace_id=api_key.workspace_id)
        ws_limit = ws_limit.first()
        if ws_limit is not None and cap > ws_limit.monthly_cap_micros:
            raise ValidationError(
                {
                    "cap": f"An API key's cap may not exceed its workspace's monthly cap of "
                    f"{money.dollars(ws_limit.monthly_cap_micros)}."
                }
            )


@transaction.atomic
def save_spend_limit(
    *,
    organization: Organization,
    actor,
    enabled: bool,
    cap_micros: int,
    thresholds: list[int],
    scope: str = LimitScope.ORGANIZATION,
    workspace: Workspace | None = None,
    api_key=None,
    notify_billing_members: bool = True,
    extra_recipients: list[str] = (),
    expected_version: int | None = None,
) -> SpendLimit:
    """Create or change the limit of a scope. `expected_version`: the version the editor saw
    (None: they saw no limit). Refused if the row has moved on since."""
    organization = _lock_org(organization)
    if scope == LimitScope.WORKSPACE and (
        workspace is None or workspace.organization_id != organization.pk
    ):
        raise ValidationError({"workspace": "Choose a workspace of this organization."})
    if scope == LimitScope.API_KEY and (
        api_key is None or api_key.organization_id != organization.pk
    ):
        raise ValidationError({"api_key": "Choose an API key of this organization."})
    cap_micros = clean_cap(cap_micros)
    thresholds = clean_thresholds(thresholds)
    extra_recipients = clean_recipients(extra_recipients)
    for value in extra_recipients:
        if contains_card_number(value):
            raise ValidationError({"extra_recipients": CARD_MESSAGE})
    limit = (
        SpendLimit.objects.select_for_update(of=("self",))
        .select_related("organization", "workspace", "api_key", "updated_by")
        .filter(organization=organization, **_target_filter(scope, workspace, api_key))
        .first()
    )
    current = None if limit is None else limit.version
    if current != expected_version:
        raise _stale(limit)
    if enabled:
        _check_hierarchy(organization, scope, workspace, api_key, cap_micros)
    before = limit_summary(limit)
    if limit is None:
        limit = SpendLimit(
            organization=organization,
            scope=scope,
            workspace=workspace,
            api_key=api_key,
            version=0,
        )
    old_thresholds = limit.thresholds if limit.pk else None
    limit.enabled = enabled
    limit.monthly_cap_micros = cap_micros
    limit.threshold_percents = thresholds
    limit.notify_billing_members = notify_billing_members
    limit.extra_recipients = extra_recipients
    limit.version += 1
    limit.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    limit.save()
    after = limit_summary(limit)
    if {k: v for k, v in (before or {}).items() if k != "thresholds"} != {
        k: v for k, v in after.items() if k != "thresholds"
    }:
        record_event(
            action="billing.limit_changed",
            organization=organization,
            actor=actor,
            target=limit,
            target_label=limit.target_label,
            before=before,
            after=after,
        )
    if old_thresholds != thresholds:
        record_event(
            action="billing.thresholds_changed",
            organization=organization,
            actor=actor,
            target=limit,
            target_label=limit.target_label,
            before={"thresholds": old_thresholds},
            after={"thresholds": thresholds},
        )
    alerts.mark_passed_thresholds(limit)
    announce_limits_changed(organization.pk)
    return limit


@transaction.atomic
def remove_spend_limit(*, limit: SpendLimit, actor, expected_version: int | None = None) -> None:
    _lock_org(limit.organization)
    locked = (
        SpendLimit.objects.select_for_update(of=("self",))
        .select_related("organization", "workspace", "api_key", "updated_by")
        .filter(pk=limit.pk)
        .first()
    )
    if locked is None or (expected_version is not None and locked.version != expected_version):
        raise _stale(locked)
    if locked.scope == LimitScope.ORGANIZATION:
        raise ValidationError("Turn the organization's limit off instead of removing it.")
    before = limit_summary(locked)
    record_event(
        action="billing.limit_changed",
        organization=locked.organization,
        actor=actor,
        target=locked,
        target_label=locked.target_label,
        before=before,
        after=None,
    )
    locked.delete()
    announce_limits_changed(limit.organization_id)


# -- billing contact ---------------------------------------------------------------------------


def default_invoice_prefix(organization: Organization) -> str:
    head = organization.slug.split("-", 1)[0].upper()
    return "".join(c for c in head if c.isalnum())[:12] or "INV"


def billing_profile(organization: Organization) -> BillingProfile:
    profile = BillingProfile.objects.filter(organization=organization).first()
    return profile or BillingProfile(
        organization=organization, invoice_prefix=default_invoice_prefix(organization)
    )


def _profile_summary(profile: BillingProfile) -> dict:
    return {
        "billing_email": profile.billing_email,
        "legal_name": profile.legal_name,
        "address": profile.address,
        "tax_id": profile.tax_id,
        "invoice_prefix": profile.invoice_prefix,
    }


@transaction.atomic
def update_billing_contact(*, organization: Organization, actor, **fields) -> BillingProfile:
    for name, value in fields.items():
        if contains_card_number(value):
            raise ValidationError({name: CARD_MESSAGE})
    profile, _ = BillingProfile.objects.select_for_update().get_or_create(
        organization=organization,
        defaults={"invoice_prefix": default_invoice_prefix(organization)},
    )
    before = _profile_summary(profile)
    for name, value in fields.items():
        setattr(profile, name, value)
    profile.full_clean(exclude=["organization"])
    after = _profile_summary(profile)
    if before == after:
        return profile
    profile.save()
    record_event(
        action="billing.contact_changed",
        organization=organization,
        actor=actor,
        target=profile,
        target_label="Billing contact",
        before=before,
        after=after,
    )
    return profile


# -- payment methods ---------------------------------------------------------------------------


def _method_summary(method: PaymentMethod) -> dict:
    return {"kind": method.kind, "label": method.label, "default": method.is_default}


@transaction.atomic
def add_payment_method(
    *,
    organization: Organization,
    actor,
    kind: str,
    brand: str = "",
    last4: str = "",
    exp_month: int | None = None,
    exp_year: int | None = None,
    holder_name: str = "",
    payment_terms_days: int = 30,
    make_default: bool = False,
) -> PaymentMethod:
    _lock_org(organization)
    for name, value in {"holder_name": holder_name, "last4": last4}.items():
        if contains_card_number(value):
            raise ValidationError({name: CARD_MESSAGE})
    if kind == PaymentMethodKind.CARD:
        if not (len(last4) == 4 and last4.isascii() and last4.isdigit()):
            raise ValidationError({"last4": "Enter the last 4 digits of the card."})
        today = timezone.localdate()
        if exp_month is None or exp_year is None or not 1 <= exp_month <= 12:
            raise ValidationError({"exp_month": "Enter the expiry month and year."})
        if (exp_year, exp_month) < (today.year, today.month):
            raise ValidationError({"exp_year": "This card has expired."})
        if exp_year > today.year + 20:
            raise ValidationError({"exp_year": "Enter the expiry year printed on the card."})
    existing = PaymentMethod.objects.filter(organization=organization, removed_at__isnull=True)
    make_default = make_default or not existing.exists()
    if make_default:
        existing.filter(is_default=True).update(is_default=False)
    method = PaymentMethod.objects.create(
        organization=organization,
        kind=kind,
        brand=brand if kind == PaymentMethodKind.CARD else "",
        last4=last4 if kind == PaymentMethodKind.CARD else "",
        exp_month=exp_month if kind == PaymentMethodKind.CARD else None,
        exp_year=exp_year if kind == PaymentMethodKind.CARD else None,
        holder_name=holder_name if kind == PaymentMethodKind.CARD else "",
        payment_terms_days=payment_terms_days if kind == PaymentMethodKind.INVOICE else 0,
        is_default=make_default,
    )
    record_event(
        action="billing.payment_method_added",
        organization=organization,
        actor=actor,
        target=method,
        target_label=method.label,
        after=_method_summary(method),
    )
    return method


@transaction.atomic
def set_default_payment_method(*, method: PaymentMethod, actor) -> PaymentMethod:
    _lock_org(method.organization)
    method = PaymentMethod.objects.select_for_update().get(pk=method.pk)
    if method.removed_at is not None:
        raise ValidationError("This payment method was removed.")
    if method.is_default:
        return method
    previous = PaymentMethod.objects.filter(
        organization_id=method.organization_id, is_default=True
    ).first()
    PaymentMethod.objects.filter(organization_id=method.organization_id, is_default=True).update(
        is_default=False
    )
    method.is_default = True
    method.save(update_fields=["is_default"])
    record_event(
        action="billing.payment_method_default_changed",
        organization=method.organization,
        actor=actor,
        target=method,
        target_label=method.label,
        before={"default": previous.label if previous else None},
        after={"default": method.label},
    )
    return method


@transaction.atomic
def remove_payment_method(*, method: PaymentMethod, actor) -> PaymentMethod:
    _lock_org(method.organization)
    method = PaymentMethod.objects.select_for_update().get(pk=method.pk)
    if method.removed_at is not None:
        raise ValidationError("This payment method was already removed.")
    before = _method_summary(method)
    was_default = method.is_default
    method.is_default = False
    method.removed_at = timezone.now()
    method.save(update_fields=["is_default", "removed_at"])
    if was_default:  # the newest remaining method takes over
        successor = (
            PaymentMethod.objects.filter(
                organization_id=method.organization_id, removed_at__isnull=True
            )
            .order_by("-created_at")
            .first()
        )
        if successor is not None:
            successor.is_default = True
            successor.save(update_fields=["is_default"])
    record_event(
        action="billing.payment_method_removed",
        organization=method.organization,
        actor=actor,
        target=method,
        target_label=method.label,
        before=before,
        after=None,
    )
    return method
