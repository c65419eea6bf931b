"""Invoices: issued at period close from the usage rollups; payments recorded against them.

    close_periods()                       # hourly (beat): each organization's last month
    record_payment(invoice=..., amount_cents=..., ...)
    void_invoice(invoice=..., reason=..., actor=...)

Idempotent: one invoice per organization and period (a unique constraint); closing again finds
it and changes nothing. Numbers (`ACME-2026-0001`) are taken when an invoice is issued, in its
transaction, from a locked per-organization counter: no gaps, no duplicates (billing/numbering).

Lines, from `UsageDaily` of the period (organization-local days): one per model, and the same
charges again per workspace. The exact total is the rollups' sum in micro-dollars; the invoice
total is that rounded half-up to the cent, and each group's lines are rounded so that they add up
to exactly that total (largest remainders), so nothing printed disagrees with the rollups.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from audit.services import record_event
from orgs.models import Organization, Workspace

from . import money, periods, selectors
from .cardguard import MESSAGE as CARD_MESSAGE
from .cardguard import contains_card_number
from .models import (
    CreditAccount,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineGroup,
    Payment,
    PaymentKind,
    PaymentMethodKind,
)
from .notify import send_email
from .numbering import next_number

logger = logging.getLogger(__name__)

# Usage may still arrive for a few minutes after a period ends (in-flight requests, a spool
# replayed): the close waits this long.
CLOSE_GRACE = timedelta(hours=1)


def allocate_cents(amounts_micros: list[int], total_cents: int) -> list[int]:
    """Round each amount to cents so that they add up to `total_cents` (largest remainder)."""
    floors = [m // 10_000 for m in amounts_micros]
    remainders = [m % 10_000 for m in amounts_micros]
    short = total_cents - sum(floors)
    order = sorted(range(len(amounts_micros)), key=lambda i: (-remainders[i], i))
    for i in order[: max(0, short)]:
        floors[i] += 1
    return floors


def _rows(organization: Organization, start, end, field: str):
    return (
        selectors.gateway_daily(organization.pk)
        .filter(day__gte=start, day__lt=end)
        .values(field)
        .annotate(
            requests=Sum("requests"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cache_write_tokens=Sum("cache_creation_input_tokens"),
            cache_read_tokens=Sum("cache_read_input_tokens"),
            cost=Sum("cost_micros"),
        )
        .order_by(field)
    )


def _lines(invoice: Invoice, group: str, rows: list[dict], total_cents: int, names: dict) -> list:
    amounts = [int(r["cost"] or 0) for r in rows]
    cents = allocate_cents(amounts, total_cents)
    lines = []
    for position, (row, amount, rounded) in enumerate(zip(rows, amounts, cents, strict=True)):
        if group == LineGroup.MODEL:
            description = row["model"] or "Unpriced requests"
        else:
            workspace_id = row["workspace_id"]
            description = names.get(
                workspace_id, f"Workspace #{workspace_id}" if workspace_id else "No workspace"
            )
        lines.append(
            InvoiceLine(
                invoice=invoice,
                group=group,
                position=position + 1,
                description=description,
                model=row.get("model", "") or "",
                workspace_id=row.get("workspace_id") if group == LineGroup.WORKSPACE else None,
                requests=row["requests"] or 0,
                input_tokens=row["input_tokens"] or 0,
                output_tokens=row["output_tokens"] or 0,
                cache_write_tokens=row["cache_write_tokens"] or 0,
                cache_read_tokens=row["cache_read_tokens"] or 0,
                amount_micros=amount,
                amount_cents=rounded,
            )
        )
    return lines


def _bill_to(organization: Organization) -> dict:
    from .services import billing_profile

    profile = billing_profile(organization)
    return {
        "name": profile.legal_name or organization.name,
        "email": profile.billing_email,
        "address": profile.address,
        "tax_id": profile.tax_id,
    }


def create_invoice(organization: Organization, period_start) -> tuple[Invoice, bool]:
    """The period's invoice, created (as a draft, with its lines) unless it exists."""
    existing = Invoice.objects.filter(organization=organization, period_start=period_start).first()
    if existing is not None:
        return existing, False
    end = periods.next_month(period_start)
    by_model = list(_rows(organization, period_start, end, "model"))
    by_workspace = list(_rows(organization, period_start, end, "workspace_id"))
    usage = sum(int(r["cost"] or 0) for r in by_model)
    total_cents = money.cents(usage)
    names = dict(Workspace.objects.filter(organization=organization).values_list("id", "name"))
    try:
        with transaction.atomic():
            invoice = Invoice.objects.create(
                organization=organization,
                period_start=period_start,
                period_end=end,
                usage_micros=usage,
                total_cents=total_cents,
                bill_to=_bill_to(organization),
            )
            InvoiceLine.objects.bulk_create(
                _lines(invoice, LineGroup.MODEL, by_model, total_cents, names)
                + _lines(invoice, LineGroup.WORKSPACE, by_workspace, total_cents, names)
            )
    except IntegrityError:  # a concurrent close created it first
        return Invoice.objects.get(organization=organization, period_start=period_start), False
    return invoice, True


@transaction.atomic
def issue_invoice(invoice: Invoice, now: datetime | None = None) -> Invoice:
    """Draft → open, numbered; paid at once from prepaid credits when the organization is on
    prepaid credits. Issuing an issued invoice changes nothing."""
    now = now or timezone.now()
    invoice = (
        Invoice.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=invoice.pk)
    )
    if invoice.status != InvoiceStatus.DRAFT:
        return invoice
    organization = invoice.organization
    method = selectors.default_payment_method(organization)
    invoice.number = next_number(organization, "invoice", now.year)
    invoice.status = InvoiceStatus.OPEN
    invoice.issued_at = now
    terms = method.payment_terms_days if method and method.kind == PaymentMethodKind.INVOICE else 0
    invoice.due_on = timezone.localdate(now, organization.tzinfo) + timedelta(days=terms)
    invoice.payment_method_label = method.label if method else ""
    invoice.save()
    record_event(
        action="invoice.issued",
        organization=organization,
        actor_label="Console",
        target=invoice,
        target_label=f"Invoice {invoice.number}",
        after={
            "number": invoice.number,
            "period": periods.month_key(invoice.period_start),
            "total": money.cents_text(invoice.total_cents),
        },
    )
    prepaid = CreditAccount.objects.filter(organization=organization, enabled=True).exists()
    if invoice.total_cents == 0 or prepaid:
        _settle(
            invoice,
            kind=PaymentKind.CREDITS,
            reference="Prepaid credits",
            actor=None,
            received_on=invoice.due_on,
            amount_cents=invoice.total_cents,
        )
    transaction.on_commit(lambda: _email_invoice(invoice.pk), robust=True)
    return invoice


def close_periods(now: datetime | None = None) -> list[int]:
    """Issue the invoice of every organization whose last period ended (at least CLOSE_GRACE
    ago) and had usage. Returns the ids of the invoices issued by this call."""
    now = now or timezone.now()
    issued = []
    for organization in Organization.objects.all().only("id", "name", "slug", "timezone"):
        current, _ = periods.period_of(organization.timezone, now)
        previous = periods.previous_month(current)
        if now - periods.start_instant(organization.timezone, current) < CLOSE_GRACE:
            previous = periods.previous_month(previous)  # the last one is still in its grace
        end = periods.next_month(previous)
        if (
            not selectors.gateway_daily(organization.pk)
            .filter(day__gte=previous, day__lt=end)
            .exists()
        ):
            continue
        invoice, _ = create_invoice(organization, previous)
        if invoice.status == InvoiceStatus.DRAFT:
            issue_invoice(invoice, now)
            issued.append(invoice.pk)
    return issued


# -- payments ------------------------------------------------------------------------------------


def _settle(
    invoice: Invoice, *, kind, reference, actor, received_on, amount_cents
) -> Payment | None:
    payment = None
    if amount_cents > 0:
        payment = Payment.objects.create(
            invoice=invoice,
            amount_cents=amount_cents,
            kind=kind,
            reference=reference,
            received_on=received_on,
            recorded_by=actor if getattr(actor, "is_authenticated", False) else None,
            recorded_by_label=getattr(actor, "email", "") or "Console",
        )
        invoice.paid_cents += amount_cents
        record_event(
            action="invoice.payment_recorded",
            organization=invoice.organization,
            actor=actor,
            actor_label=None if actor else "Console",
            target=invoice,
            target_label=f"Invoice {invoice.number}",
            after={
                "amount": money.cents_text(amount_cents),
                "kind": kind,
                "reference": reference,
                "received_on": received_on,
            },
        )
    if invoice.paid_cents >= invoice.total_cents:
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = timezone.now()
        record_event(
            action="invoice.paid",
            organization=invoice.organization,
            actor=actor,
            actor_label=None if actor else "Console",
            target=invoice,
            target_label=f"Invoice {invoice.number}",
            after={"total": money.cents_text(invoice.total_cents)},
        )
    invoice.save()
    return payment


@transaction.atomic
def record_payment(
    *, invoice: Invoice, actor, amount_cents: int, kind: str, reference: str, received_on
) -> Payment:
    if contains_card_number(reference):
        raise ValidationError({"reference": CARD_MESSAGE})
    invoice = (
        Invoice.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=invoice.pk)
    )
    if invoice.status == InvoiceStatus.VOID:
        raise ValidationError("This invoice is void: it cannot be paid.")
    if invoice.status == InvoiceStatus.DRAFT:
        raise ValidationError("This invoice is not issued yet.")
    if invoice.status == InvoiceStatus.PAID:
        raise ValidationError("This invoice is paid in full already.")
    if amount_cents <= 0:
        raise ValidationError({"amount": "Enter an amount above zero."})
    if amount_cents > invoice.due_cents:
        raise ValidationError(
            {"amount": f"That is more than the {money.cents_text(invoice.due_cents)} due."}
        )
    if received_on > timezone.localdate(timezone.now(), invoice.organization.tzinfo):
        raise ValidationError({"received_on": "The date a payment was received cannot be ahead."})
    return _settle(
        invoice,
        kind=kind,
        reference=reference.strip()[:100],
        actor=actor,
        received_on=received_on,
        amount_cents=amount_cents,
    )


@transaction.atomic
def void_invoice(*, invoice: Invoice, actor, reason: str) -> Invoice:
    if contains_card_number(reason):
        raise ValidationError({"reason": CARD_MESSAGE})
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the invoice is voided."})
    invoice = (
        Invoice.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=invoice.pk)
    )
    if invoice.status == InvoiceStatus.VOID:
        raise ValidationError("This invoice is void already.")
    if invoice.paid_cents > 0:
        raise ValidationError("Payments were recorded against this invoice: it cannot be voided.")
    before = {"status": invoice.status}
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = timezone.now()
    invoice.void_reason = reason[:200]
    invoice.save()
    record_event(
        action="invoice.voided",
        organization=invoice.organization,
        actor=actor,
        target=invoice,
        target_label=f"Invoice {invoice.number or invoice}",
        before=before,
        after={"status": "void", "reason": invoice.void_reason},
    )
    return invoice


def _email_invoice(invoice_id: int) -> None:
    invoice = Invoice.objects.select_related("organization").get(pk=invoice_id)
    organization = invoice.organization
    to = [invoice.bill_to.get("email")] if invoice.bill_to.get("email") else []
    to = to or selectors.billing_recipients(organization)
    if not to:
        return
    context = {
        "organization": organization,
        "invoice": invoice,
        "total": money.cents_text(invoice.total_cents),
        "period": periods.period_label(invoice.period_start),
        "invoice_path": f"/o/{organization.slug}/billing/invoices/{invoice.pk}/",
    }
    try:
        send_email("billing-invoice-issued", to, context)
    except Exception:
        logger.exception("Could not email invoice %s", invoice.number)
