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
    """Alerts and auto-recharges of these organizations (queued after each usage batch)."""
    alerts.evaluate_spending(organization_ids)


@shared_task
def sweep_spending() -> int:
    """Every minute: evaluate every organization with an enabled limit or auto-recharge, in
    case a queued evaluation was lost (a broker restart). Claims keep it exactly-once."""
    ids = alerts.organizations_to_sweep()
    alerts.evaluate_spending(ids)
    return len(ids)
