"""The weekly digest (the guide's Step 5, "check the Usage dashboard every Monday"): on Monday
morning in each organization's time zone, its Admins and Billing-only members get last week's
totals by workspace and by model, with the week's usage as CSV attached (day rows, the usage
export's header).

    send_weekly_digests(now=...)   # beat, hourly: organizations whose Monday morning it is

Once per week with any number of beat or worker processes: the week's `UsageDigest` row is the
claim (`INSERT … ON CONFLICT DO NOTHING RETURNING id` on organization + week); the caller that
inserts it creates one `DigestDelivery` per recipient in the same transaction. Each delivery is
sent under its row lock (`FOR UPDATE SKIP LOCKED`) and marked sent in that transaction, so no
two processes send it; one the mail server refused is retried by the next hourly run.

Recipients are the organization's Admins and Billing-only members at claim time, less those who
turned the digest off on their profile (`NotificationPreference.weekly_digest`). A week without
any usage sends nothing.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import connection, transaction
from django.utils import timezone

from core import emails
from orgs.models import Organization

from . import export, selectors
from .models import DigestDelivery, NotificationPreference, UsageDigest
from .spikes import dollars

logger = logging.getLogger(__name__)

SEND_FROM_HOUR = 7  # "Monday morning": from 07:00 in the organization's zone
MAX_ATTEMPTS = 24


def week_due(organization: Organization, now: dt.datetime) -> dt.date | None:
    """The Monday that began last week, if it is Monday morning (or later that Monday) in the
    organization's zone; else None."""
    local = now.astimezone(organization.tzinfo)
    if local.weekday() != 0 or local.hour < SEND_FROM_HOUR:
        return None
    return local.date() - dt.timedelta(days=7)


def send_weekly_digests(
    *, now: dt.datetime | None = None, organization_ids: list[int] | None = None
) -> list[int]:
    """Claim the digests due and send every delivery not sent yet. Returns the claimed ids."""
    now = now or timezone.now()
    organizations = Organization.objects.all()
    if organization_ids is not None:
        organizations = organizations.filter(pk__in=organization_ids)
    claimed = []
    for organization in organizations.iterator():
        week_start = week_due(organization, now)
        if week_start is None:
            continue
        if UsageDigest.objects.filter(organization=organization, week_start=week_start).exists():
            continue
        digest_id = claim(organization, week_start, now=now)
        if digest_id is not None:
            claimed.append(digest_id)
    send_pending()
    return claimed


def recipients(organization: Organization) -> list[tuple[int, str]]:
    """(user id, email) of the Admins and Billing-only members who want the digest."""
    from members.models import Membership, Role

    opted_out = NotificationPreference.objects.filter(weekly_digest=False).values("user_id")
    return list(
        Membership.objects.filter(
            organization=organization, role__in=[Role.ADMIN, Role.BILLING], user__is_active=True
        )
        .exclude(user_id__in=opted_out)
        .order_by("user__email")
        .values_list("user_id", "user__email")
    )


@transaction.atomic
def claim(organization: Organization, week_start: dt.date, *, now: dt.datetime) -> int | None:
    """Insert the week's digest row and its deliveries unless the row exists."""
    totals = selectors.totals(week_scope(organization, week_start))
    table = UsageDigest._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (organization_id, week_start, claimed_at, cost_micros) "  # noqa: S608
            "VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (organization_id, week_start) DO NOTHING RETURNING id",
            [organization.pk, week_start, now, totals.cost_micros],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    if totals.requests:  # a week without usage: the claim stands, nobody is written to
        DigestDelivery.objects.bulk_create(
            [
                DigestDelivery(digest_id=row[0], user_id=user_id, email=email)
                for user_id, email in recipients(organization)
            ]
        )
    return row[0]


def send_pending() -> int:
    pending = DigestDelivery.objects.filter(
        sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS
    ).values_list("pk", flat=True)
    return sum(send_delivery(delivery_id) for delivery_id in list(pending))


def send_delivery(delivery_id: int) -> bool:
    """Send one delivery unless sent or being sent; True if this call sent it."""
    error = ""
    with transaction.atomic():
        delivery = (
            DigestDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("digest", "digest__organization")
            .filter(pk=delivery_id, sent_at__isnull=True)
            .first()
        )
        if delivery is None:
            return False
        if delivery.user_id and not wants_digest(delivery.user_id):
            delivery.delete()  # opted out after the claim, before the send
            return False
        try:
            emails.send(build_message(delivery.digest, delivery.email))
        except Exception as exc:  # retried by the next run
            error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            delivery.sent_at = timezone.now()
            delivery.attempts += 1
            delivery.save(update_fields=["sent_at", "attempts"])
            return True
    logger.warning("Weekly digest delivery %s failed: %s", delivery_id, error)
    DigestDelivery.objects.filter(pk=delivery_id).update(
        attempts=delivery.attempts + 1, last_error=error
    )
    return False


def wants_digest(user_id: int) -> bool:
    preference = NotificationPreference.objects.filter(user_id=user_id).first()
    return preference is None or preference.weekly_digest


# -- what the digest says: the dashboard's selectors and the usage export's CSV ---------------


def week_scope(organization: Organization, week_start: dt.date) -> selectors.UsageScope:
    return selectors.UsageScope(
        organization=organization, start=week_start, end=week_start + dt.timedelta(days=6)
    )


def week_csv(organization: Organization, week_start: dt.date) -> str:
    """The week's usage by day, exactly as the usage page's CSV export (by day) writes it."""
    # PostgreSQL writes the export's lines as bytes (chunks may split a character), SQLite as str.
    parts = export.rows(week_scope(organization, week_start), "day", organization)
    return b"".join(p if isinstance(p, bytes) else p.encode() for p in parts).decode()


def _lines(rows: list[dict]) -> list[dict]:
    return [{**row, "cost": dollars(row["cost_micros"])} for row in rows]


def summary(organization: Organization, week_start: dt.date) -> dict:
    scope = week_scope(organization, week_start)
    names = selectors.Names.of(organization)
    totals = selectors.totals(scope)
    previous = selectors.totals(week_scope(organization, week_start - dt.timedelta(days=7)))
    return {
        "totals": totals,
        "cost": dollars(totals.cost_micros),
        "previous_cost": dollars(previous.cost_micros),
        "by_workspace": _lines(selectors.breakdown(scope, "workspace", names)),
        "by_model": _lines(selectors.breakdown(scope, "model", names)),
    }


def build_message(digest: UsageDigest, email: str):
    organization = digest.organization
    week_end = digest.week_start + dt.timedelta(days=6)
    context = {
        "organization": organization,
        "week": f"{digest.week_start:%-d %b} – {week_end:%-d %b %Y}",
        "usage_path": f"/o/{organization.slug}/usage/?start={digest.week_start}&end={week_end}",
        "profile_path": "/profile/",
        **summary(organization, digest.week_start),
    }
    filename = f"usage-{organization.slug}-{digest.week_start.isoformat()}.csv"
    return emails.make_message(
        "usage-weekly-digest",
        email,
        context,
        attachments=[(filename, week_csv(organization, digest.week_start), "text/csv")],
    )
