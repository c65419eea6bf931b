"""Document numbers without gaps, per organization: `ACME-2026-0001` (invoices) and
`ACME-R-2026-0001` (receipts). The counter row is locked in the transaction that issues the
document, so a rolled-back issue gives its number back and two issues never share one."""

from __future__ import annotations

from django.db import transaction

from .models import BillingProfile, DocumentCounter


def prefix_of(organization) -> str:
    from .services import default_invoice_prefix

    profile = BillingProfile.objects.filter(organization=organization).first()
    return (profile.invoice_prefix if profile else "") or default_invoice_prefix(organization)


def next_number(organization, series: str, year: int) -> str:
    assert transaction.get_connection().in_atomic_block, "take numbers inside the transaction"
    DocumentCounter.objects.get_or_create(organization=organization, series=series, year=year)
    counter = DocumentCounter.objects.select_for_update().get(
        organization=organization, series=series, year=year
    )
    counter.last += 1
    counter.save(update_fields=["last"])
    middle = "-R" if series == "receipt" else ""
    return f"{prefix_of(organization)}{middle}-{year}-{counter.last:04d}"
