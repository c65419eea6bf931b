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

import csv
import datetime as dt
import io
import logging
from collections import defaultdict
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from core import emails
from orgs.models import Organization, Workspace

from .models import DigestDelivery, NotificationPreference, UsageDaily, UsageDigest
from .spikes import dollars

logger = logging.getLogger(__name__)

SEND_FROM_HOUR = 7  # "Monday morning": from 07:00 in the organization's zone
MAX_ATTEMPTS = 24
CSV_HEADER = (
    "period_start", "workspace", "api_key_name", "api_key_prefix", "model", "source",
    "requests", "errors", "input_tokens", "output_tokens", "cache_creation_input_tokens",
    "cache_read_input_tokens", "cost_usd",
)  # fmt: skip
COUNTERS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cost_micros",
)


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


def week_rows(organization_id: int, week_start: dt.date):
    return UsageDaily.objects.filter(
        organization_id=organization_id,
        day__gte=week_start,
        day__lt=week_start + dt.timedelta(days=7),
    )


@transaction.atomic
def claim(organization: Organization, week_start: dt.date, *, now: dt.datetime) -> int | None:
    """Insert the week's digest row and its deliveries unless the row exists."""
    cost = week_rows(organization.pk, week_start).aggregate(c=Sum("cost_micros"))["c"]
    requests = week_rows(organization.pk, week_start).aggregate(r=Sum("requests"))["r"]
    table = UsageDigest._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (organization_id, week_start, claimed_at, cost_micros) "  # noqa: S608
            "VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (organization_id, week_start) DO NOTHING RETURNING id",
            [organization.pk, week_start, now, cost or 0],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    if requests:  # a week without usage: the claim stands, nobody is written to
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


# -- what the digest says ------------------------------------------------------------------------


def _names(organization_id: int, rows: list[dict]) -> tuple[dict, dict]:
    from apikeys.models import ApiKey

    workspace_ids = {r["workspace_id"] for r in rows if r["workspace_id"]}
    key_ids = {r["api_key_id"] for r in rows if r.get("api_key_id")}
    workspaces = dict(
        Workspace.objects.filter(organization_id=organization_id, pk__in=workspace_ids).values_list(
            "pk", "name"
        )
    )
    keys = {
        pk: (name, prefix)
        for pk, name, prefix in ApiKey.objects.filter(
            organization_id=organization_id, pk__in=key_ids
        ).values_list("pk", "name", "prefix")
    }
    return workspaces, keys


def cost_usd(micros: int) -> str:
    return f"{Decimal(micros) / 1_000_000:.6f}"


def week_csv(organization_id: int, week_start: dt.date) -> str:
    """The week's usage by day, as the usage export writes it (one row per day × workspace ×
    key × model × source)."""
    rows = list(
        week_rows(organization_id, week_start)
        .order_by("day", "workspace_id", "api_key_id", "model", "source")
        .values("day", "workspace_id", "api_key_id", "model", "source", *COUNTERS)
    )
    workspaces, keys = _names(organization_id, rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        key_name, key_prefix = keys.get(row["api_key_id"], ("", ""))
        writer.writerow(
            [
                row["day"].isoformat(),
                workspaces.get(row["workspace_id"], ""),
                key_name,
                key_prefix,
                row["model"],
                row["source"],
                *(row[name] for name in COUNTERS[:-1]),
                cost_usd(row["cost_micros"]),
            ]
        )
    return out.getvalue()


def _grouped(rows: list[dict], name_of) -> list[dict]:
    groups: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for row in rows:
        group = groups[name_of(row)]
        for counter in COUNTERS:
            group[counter] += row[counter]
    ordered = sorted(groups.items(), key=lambda item: (-item[1]["cost_micros"], item[0]))
    return [
        {"name": name, **totals, "cost": dollars(totals["cost_micros"])} for name, totals in ordered
    ]


def summary(organization_id: int, week_start: dt.date) -> dict:
    rows = list(
        week_rows(organization_id, week_start)
        .values("workspace_id", "model")
        .annotate(**{counter: Sum(counter) for counter in COUNTERS})
    )
    workspaces, _ = _names(organization_id, rows)
    totals = {counter: sum(row[counter] for row in rows) for counter in COUNTERS}
    previous = (
        week_rows(organization_id, week_start - dt.timedelta(days=7)).aggregate(
            c=Sum("cost_micros")
        )["c"]
        or 0
    )
    return {
        "totals": {**totals, "cost": dollars(totals["cost_micros"])},
        "previous_cost": dollars(previous),
        "by_workspace": _grouped(
            rows, lambda r: workspaces.get(r["workspace_id"], "(no workspace)")
        ),
        "by_model": _grouped(rows, lambda r: r["model"] or "(unknown model)"),
    }


def build_message(digest: UsageDigest, email: str):
    organization = digest.organization
    week_end = digest.week_start + dt.timedelta(days=6)
    context = {
        "organization": organization,
        "week": f"{digest.week_start:%-d %b} – {week_end:%-d %b %Y}",
        "usage_path": f"/o/{organization.slug}/usage/",
        "profile_path": "/profile/",
        **summary(organization.pk, digest.week_start),
    }
    filename = f"usage-{organization.slug}-{digest.week_start.isoformat()}.csv"
    return emails.make_message(
        "usage-weekly-digest",
        email,
        context,
        attachments=[(filename, week_csv(organization.pk, digest.week_start), "text/csv")],
    )
