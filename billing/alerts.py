"""Spending alerts, each sent exactly once per limit, period and threshold.

    evaluate_alerts(organization_ids=[...])   # after each usage ingestion batch

For every enabled limit of those organizations the period's spend (usage rollups) is compared
with its thresholds. A threshold reached is *claimed* by inserting its `SpendAlert` row with
`INSERT … ON CONFLICT DO NOTHING RETURNING id` on the unique (limit, period, threshold): of any
number of evaluators racing (consumers, workers, processes), exactly one gets the row back, and
only that one sends. Recipients get one `AlertDelivery` row each, created with the claim; each is
sent under a row lock and marked sent once the mail server took it, so a failed send is retried
(`retry_unsent_alerts`, every minute) for the recipients still missing it, never claimed again.
When the last recipient has it, the alert is marked sent and `billing.alert_sent` is recorded.

A new period has new claims (the period is in the key): thresholds re-arm by themselves. A
threshold that spend had already passed when it was set (thresholds edited, cap lowered, limit
enabled mid-period) is claimed as "already passed when set" by the edit, without an email:
changing thresholds fires only those that spending crosses afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from audit.services import record_event

from . import money, periods, selectors
from .models import AlertDelivery, AlertStatus, LimitScope, SpendAlert, SpendLimit
from .notify import send_email

logger = logging.getLogger(__name__)

RETRY_AFTER = timedelta(minutes=1)
MAX_ATTEMPTS = 20


def crossed(spent: int, cap: int, thresholds: Iterable[int]) -> list[int]:
    return [t for t in sorted(thresholds) if cap > 0 and spent * 100 >= t * cap]


def claim(
    *,
    limit: SpendLimit,
    period_start: date,
    threshold: int,
    status: str,
    spent: int,
    now: datetime,
) -> int | None:
    """Insert the alert row unless it exists; its id if this call inserted it, else None."""
    table = SpendAlert._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} "  # noqa: S608 (the table name is ours)
            "(limit_id, period_start, threshold, status, crossed_at, spend_micros, cap_micros, "
            "sent_at) VALUES (%s, %s, %s, %s, %s, %s, %s, NULL) "
            "ON CONFLICT (limit_id, period_start, threshold) DO NOTHING RETURNING id",
            [limit.pk, period_start, threshold, status, now, spent, limit.monthly_cap_micros],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def recipients_of(limit: SpendLimit) -> list[str]:
    found = selectors.billing_recipients(limit.organization) if limit.notify_billing_members else []
    for email in limit.extra_recipients or ():
        if email.lower() not in {f.lower() for f in found}:
            found.append(email)
    return found


def mark_passed_thresholds(limit: SpendLimit, now: datetime | None = None) -> list[int]:
    """Claim, without an email, the thresholds spend already stands at (called by edits)."""
    if not limit.enabled:
        return []
    now = now or timezone.now()
    start, _ = periods.period_of(limit.organization.timezone, now)
    spent = _spend_of(limit, start)
    marked = []
    for threshold in crossed(spent, limit.monthly_cap_micros, limit.thresholds):
        if claim(
            limit=limit,
            period_start=start,
            threshold=threshold,
            status=AlertStatus.PASSED_BEFORE_SET,
            spent=spent,
            now=now,
        ):
            marked.append(threshold)
    return marked


def _spend_of(limit: SpendLimit, start: date) -> int:
    return selectors.period_spend(
        limit.organization_id,
        start,
        workspace_id=limit.workspace_id if limit.scope == LimitScope.WORKSPACE else None,
        api_key_id=limit.api_key_id if limit.scope == LimitScope.API_KEY else None,
    )


def evaluate_alerts(
    *, organization_ids: Iterable[int] | None = None, now: datetime | None = None
) -> list[int]:
    """Claim and send the alerts due. Returns the ids of the alerts this call claimed."""
    now = now or timezone.now()
    limits = SpendLimit.objects.filter(enabled=True).select_related(
        "organization", "workspace", "api_key"
    )
    if organization_ids is not None:
        limits = limits.filter(organization_id__in=list(organization_ids))
    by_org: dict[int, list[SpendLimit]] = {}
    for limit in limits:
        by_org.setdefault(limit.organization_id, []).append(limit)
    claimed: list[int] = []
    for limits_of_org in by_org.values():
        organization = limits_of_org[0].organization
        start, _ = periods.period_of(organization.timezone, now)
        done = set(
            SpendAlert.objects.filter(limit__in=limits_of_org, period_start=start).values_list(
                "limit_id", "threshold"
            )
        )
        spend = selectors.spend_in_period(organization.pk, start)
        for limit in limits_of_org:
            spent = spend.of(limit)
            for threshold in crossed(spent, limit.monthly_cap_micros, limit.thresholds):
                if (limit.pk, threshold) in done:
                    continue
                alert_id = _claim_with_deliveries(limit, start, threshold, spent, now)
                if alert_id is not None:
                    claimed.append(alert_id)
    for alert_id in claimed:
        send_alert(alert_id)
    return claimed


@transaction.atomic
def _claim_with_deliveries(
    limit: SpendLimit, start: date, threshold: int, spent: int, now: datetime
) -> int | None:
    alert_id = claim(
        limit=limit,
        period_start=start,
        threshold=threshold,
        status=AlertStatus.PENDING,
        spent=spent,
        now=now,
    )
    if alert_id is None:
        return None
    AlertDelivery.objects.bulk_create(
        [AlertDelivery(alert_id=alert_id, email=email) for email in recipients_of(limit)]
    )
    return alert_id


def send_alert(alert_id: int) -> bool:
    """Send the deliveries of an alert not sent yet; True once every recipient has it."""
    for delivery_id in AlertDelivery.objects.filter(
        alert_id=alert_id, sent_at__isnull=True
    ).values_list("pk", flat=True):
        _send_delivery(delivery_id)
    return _finish(alert_id)


def _send_delivery(delivery_id: int) -> None:
    error = ""
    with transaction.atomic():
        delivery = (
            AlertDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("alert", "alert__limit", "alert__limit__organization")
            .filter(pk=delivery_id, sent_at__isnull=True)
            .first()
        )
        if delivery is None:
            return  # sent already, or being sent by someone else right now
        try:
            _email(delivery)
        except Exception as exc:  # retried by retry_unsent_alerts
            error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            delivery.sent_at = timezone.now()
            delivery.attempts += 1
            delivery.save(update_fields=["sent_at", "attempts"])
            return
    logger.warning("Spending alert to %s failed: %s", delivery_id, error)
    AlertDelivery.objects.filter(pk=delivery_id).update(
        attempts=delivery.attempts + 1, last_error=error
    )


@transaction.atomic
def _finish(alert_id: int) -> bool:
    if AlertDelivery.objects.filter(alert_id=alert_id, sent_at__isnull=True).exists():
        return False
    updated = SpendAlert.objects.filter(pk=alert_id, status=AlertStatus.PENDING).update(
        status=AlertStatus.SENT, sent_at=timezone.now()
    )
    if updated:  # exactly once: the conditional update is the claim of the audit entry
        alert = SpendAlert.objects.select_related("limit", "limit__organization").get(pk=alert_id)
        limit = alert.limit
        record_event(
            action="billing.alert_sent",
            organization=limit.organization,
            actor_label="Console",
            target=limit,
            target_label=limit.target_label,
            after={
                "threshold_percent": alert.threshold,
                "period": periods.month_key(alert.period_start),
                "spend": money.dollars(alert.spend_micros),
                "cap": money.dollars(alert.cap_micros),
                "recipients": list(alert.deliveries.values_list("email", flat=True)),
            },
        )
    return True


def _email(delivery: AlertDelivery) -> None:
    alert = delivery.alert
    limit = alert.limit
    organization = limit.organization
    reset = periods.start_instant(organization.timezone, periods.next_month(alert.period_start))
    context = {
        "organization": organization,
        "limit": limit,
        "alert": alert,
        "threshold": alert.threshold,
        "spend": money.dollars(alert.spend_micros),
        "cap": money.dollars(alert.cap_micros),
        "period": periods.period_label(alert.period_start),
        "reset": periods.moment_text(reset),
        "reached": alert.threshold >= 100,
        "limits_path": f"/o/{organization.slug}/billing/limits/",
    }
    send_email("billing-spend-alert", delivery.email, context)


def retry_unsent_alerts(now: datetime | None = None) -> int:
    """Send what earlier attempts could not (beat, every minute). Returns alerts completed."""
    now = now or timezone.now()
    pending = (
        SpendAlert.objects.filter(status=AlertStatus.PENDING, crossed_at__lt=now - RETRY_AFTER)
        .filter(deliveries__sent_at__isnull=True, deliveries__attempts__lt=MAX_ATTEMPTS)
        .values_list("pk", flat=True)
        .distinct()
    )
    done = 0
    for alert_id in list(pending):
        done += send_alert(alert_id)
    # An alert whose recipients all had it but was not marked (a crash in between).
    for alert_id in (
        SpendAlert.objects.filter(status=AlertStatus.PENDING, crossed_at__lt=now - RETRY_AFTER)
        .exclude(deliveries__sent_at__isnull=True)
        .values_list("pk", flat=True)
    ):
        done += _finish(alert_id)
    return done


def evaluate_spending(organization_ids: Iterable[int]) -> None:
    """Alerts, then auto-recharges, of these organizations (the task after each batch)."""
    ids = sorted(set(organization_ids))
    try:
        evaluate_alerts(organization_ids=ids)
    finally:
        from .credits import evaluate_recharges

        evaluate_recharges(organization_ids=ids)


def on_usage_ingested(sender=None, spans=(), source="gateway", **kwargs) -> None:
    """Receiver of `usage.signals.usage_ingested` (sent after each batch commits): queue the
    evaluation of the organizations whose spend just grew. Quick: a task is queued (run at
    once where tasks run eagerly, as in `make run`)."""
    if source == "imported":  # usage sent to Anthropic directly is not the console's to cap
        return
    ids = sorted({span.organization_id for span in spans})
    if not ids:
        return
    from .tasks import evaluate_spending as task

    if task.app.conf.task_always_eager:
        task.apply(args=[ids])
        return
    try:
        task.delay(ids)
    except Exception:  # a broker hiccup: the minute's sweep (beat) evaluates everyone
        logger.exception("Could not queue the spending evaluation of %s", ids)


def organizations_to_sweep() -> list[int]:
    from .models import CreditAccount

    limited = set(SpendLimit.objects.filter(enabled=True).values_list("organization_id", flat=True))
    prepaid = set(
        CreditAccount.objects.filter(enabled=True, auto_recharge=True).values_list(
            "organization_id", flat=True
        )
    )
    return sorted(limited | prepaid)
