from celery import shared_task

from . import alerts, invoicing


@shared_task
def retry_spend_alerts() -> int:
    """Send spending alerts whose email failed before (claims are never taken again)."""
    return alerts.retry_unsent_alerts()


@shared_task
def close_billing_periods() -> int:
    """Issue the invoices of the periods that ended (idempotent)."""
    return len(invoicing.close_periods())


@shared_task
def evaluate_spending(organization_ids: list[int]) -> None:
    """Alerts and auto-recharges of these organizations (queued by usage ingestion)."""
    alerts.on_usage_ingested(organization_ids=organization_ids)
