"""Spikes (the guide's "anomaly detection"): a day whose cost is over N × the trailing 7-day
average, for the organization and for each of its API keys, flagged once and emailed to the
organization's Admins once.

    detect_spikes(now=...)   # beat, hourly: each organization's "yesterday" in its own zone

N is `Organization.spike_factor` (default 3). The trailing average is the cost of the 7 days
before the day divided by 7 (a day without usage counts as $0), read from the daily rollups of
every source (gateway and imported): a day is not a spike while the 7 days before it cost
nothing, since there is nothing to compare it with.

Exactly once, with any number of beat or worker processes: a spike is *claimed* by inserting
its `UsageSpike` row with `INSERT … ON CONFLICT DO NOTHING RETURNING id` on the unique
(organization, key, day); only the caller that got the row back records the audit event. The
email is sent under the row's lock (`SELECT … FOR UPDATE SKIP LOCKED`, then `emailed_at` set in
the same transaction), so two senders never both send it, and a failed send is retried by the
next run until it goes (`MAX_EMAIL_ATTEMPTS`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from audit.services import record_event
from core import emails
from orgs.models import Organization

from .models import UsageDaily, UsageSpike

logger = logging.getLogger(__name__)

TRAILING_DAYS = 7
MAX_EMAIL_ATTEMPTS = 24  # an hourly run: a day of retries
MICROS = 1_000_000


def dollars(micros: int) -> str:
    amount = (Decimal(micros) / MICROS).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"${amount:,}"


def is_spike(cost: int, trailing_total: int, factor: Decimal) -> bool:
    """`cost` over `factor` × the trailing average (`trailing_total` / 7), in exact integers."""
    if trailing_total <= 0:
        return False
    # cost > factor × total / 7  ⇔  7 × cost > factor × total (no rounding anywhere)
    return Decimal(TRAILING_DAYS * cost) > factor * Decimal(trailing_total)


def costs_by_key(organization_id: int, day: dt.date) -> dict[int, dict[str, int]]:
    """For the organization (key 0) and each key: the day's cost and the 7 days' before it."""
    first = day - dt.timedelta(days=TRAILING_DAYS)
    rows = (
        UsageDaily.objects.filter(organization_id=organization_id, day__gte=first, day__lte=day)
        .values("day", "api_key_id")
        .annotate(cost=Sum("cost_micros"))
    )
    found: dict[int, dict[str, int]] = defaultdict(lambda: {"day": 0, "trailing": 0})
    for row in rows:
        part = "day" if row["day"] == day else "trailing"
        for key_id in {0, row["api_key_id"]}:
            found[key_id][part] += row["cost"] or 0
    return dict(found)


def yesterday_of(organization: Organization, now: dt.datetime) -> dt.date:
    return now.astimezone(organization.tzinfo).date() - dt.timedelta(days=1)


def detect_spikes(
    *, now: dt.datetime | None = None, organization_ids: list[int] | None = None
) -> list[int]:
    """Flag yesterday's spikes (each organization's zone) and email the ones not emailed yet.
    Returns the ids of the spikes this call claimed."""
    now = now or timezone.now()
    organizations = Organization.objects.all()
    if organization_ids is not None:
        organizations = organizations.filter(pk__in=organization_ids)
    claimed = []
    for organization in organizations.iterator():
        claimed += detect_for(organization, yesterday_of(organization, now), now=now)
    send_pending(now=now)
    return claimed


def detect_for(organization: Organization, day: dt.date, *, now: dt.datetime) -> list[int]:
    """Claim the spikes of `day` for the organization and its keys (not emailed here)."""
    factor = organization.spike_factor
    found = [
        (key_id, costs["day"], costs["trailing"])
        for key_id, costs in sorted(costs_by_key(organization.pk, day).items())
        if is_spike(costs["day"], costs["trailing"], factor)
    ]
    if not found:
        return []
    labels = key_labels(organization.pk, [key_id for key_id, _, _ in found if key_id])
    claimed = []
    for key_id, cost, trailing in found:
        spike_id = _claim(
            organization=organization,
            api_key_id=key_id,
            key_label=labels.get(key_id, f"#{key_id}") if key_id else "",
            day=day,
            cost=cost,
            baseline=trailing // TRAILING_DAYS,
            factor=factor,
            now=now,
        )
        if spike_id is not None:
            claimed.append(spike_id)
    return claimed


def key_labels(organization_id: int, key_ids: list[int]) -> dict[int, str]:
    """The labels of keys among `key_ids`: "name (prefix…last4)" of the gateway's keys, "name
    (Anthropic)" of the imported ones (negative ids, decision 0013)."""
    from apikeys.models import ApiKey

    from .models import ImportedName

    keys = ApiKey.objects.filter(organization_id=organization_id, pk__in=key_ids)
    labels = {
        key.pk: f"{key.name} ({key.prefix}…{key.last4})"
        for key in keys.only("pk", "name", "prefix", "last4")
    }
    imported = ImportedName.objects.filter(
        organization_id=organization_id, pk__in=[-i for i in key_ids if i < 0]
    )
    for name in imported:
        labels[name.local_id] = f"{name.name or name.anthropic_id} (Anthropic)"
    return labels


@transaction.atomic
def _claim(
    *,
    organization: Organization,
    api_key_id: int,
    key_label: str,
    day: dt.date,
    cost: int,
    baseline: int,
    factor: Decimal,
    now: dt.datetime,
) -> int | None:
    table = UsageSpike._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} "  # noqa: S608 (the table name is ours)
            "(organization_id, api_key_id, key_label, day, cost_micros, baseline_micros, factor, "
            "detected_at, emailed_at, email_attempts, last_error) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NULL, 0, '') "
            "ON CONFLICT (organization_id, api_key_id, day) DO NOTHING RETURNING id",
            [organization.pk, api_key_id, key_label, day, cost, baseline, factor, now],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    spike = UsageSpike.objects.get(pk=row[0])
    record_event(
        action="usage.spike_flagged",
        organization=organization,
        actor_label="Console",
        target=spike,
        target_label=spike.scope_label,
        after={
            "day": day.isoformat(),
            "scope": spike.scope_label,
            "cost": dollars(cost),
            "average": dollars(baseline),
            "factor": str(factor),
        },
    )
    return spike.pk


def admin_emails(organization: Organization) -> list[str]:
    from members.models import Membership, Role

    return list(
        Membership.objects.filter(organization=organization, role=Role.ADMIN, user__is_active=True)
        .order_by("user__email")
        .values_list("user__email", flat=True)
    )


def send_pending(*, now: dt.datetime | None = None) -> int:
    """Email every spike not emailed yet (and not given up on). Returns how many went."""
    now = now or timezone.now()
    pending = UsageSpike.objects.filter(
        emailed_at__isnull=True, email_attempts__lt=MAX_EMAIL_ATTEMPTS
    ).values_list("pk", flat=True)
    return sum(send_spike(spike_id, now=now) for spike_id in list(pending))


def send_spike(spike_id: int, *, now: dt.datetime | None = None) -> bool:
    """Email one spike to the organization's Admins unless it went already or is being sent.
    True if this call sent it."""
    now = now or timezone.now()
    error = ""
    with transaction.atomic():
        spike = (
            UsageSpike.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("organization")
            .filter(pk=spike_id, emailed_at__isnull=True)
            .first()
        )
        if spike is None:
            return False  # sent already, or being sent by another process right now
        recipients = admin_emails(spike.organization)
        try:
            if recipients:
                emails.send(emails.make_message("usage-spike", recipients, _context(spike)))
        except Exception as exc:  # retried by the next run
            error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            spike.emailed_at = now
            spike.email_attempts += 1
            spike.save(update_fields=["emailed_at", "email_attempts"])
            return True
    logger.warning("Spike email %s failed: %s", spike_id, error)
    UsageSpike.objects.filter(pk=spike_id).update(
        email_attempts=spike.email_attempts + 1, last_error=error
    )
    return False


def _context(spike: UsageSpike) -> dict:
    organization = spike.organization
    return {
        "organization": organization,
        "spike": spike,
        "day": spike.day.strftime("%A %-d %B %Y"),
        "cost": dollars(spike.cost_micros),
        "average": dollars(spike.baseline_micros),
        "ratio": spike.ratio,
        "factor": spike.factor.normalize(),
        "usage_path": f"/o/{organization.slug}/usage/",
        "settings_path": f"/o/{organization.slug}/settings/",
    }


def recent_spikes(membership, *, days: int = 14, today: dt.date | None = None):
    """The spikes of the last `days` days that `membership` may see: all of them for whoever
    sees the whole organization's usage, those of their own keys for a Member."""
    from members.policy import can

    organization = membership.organization
    today = today or timezone.now().astimezone(organization.tzinfo).date()
    spikes = UsageSpike.objects.filter(
        organization=organization, day__gte=today - dt.timedelta(days=days)
    )
    if not can(membership, "usage.view_all"):
        from apikeys.models import ApiKey

        own = ApiKey.objects.filter(organization=organization, owner_id=membership.user_id)
        spikes = spikes.filter(api_key_id__in=list(own.values_list("pk", flat=True)))
    return list(spikes.order_by("-day", "api_key_id")[:20])


def notices_for(membership, *, today: dt.date | None = None) -> list[dict]:
    """The usage page's notices (templates/usage/_notices.html) for the recent spikes that
    `membership` may see, each linking to its day (and key) on the dashboard."""
    notices = []
    for spike in recent_spikes(membership, today=today):
        query = f"?start={spike.day.isoformat()}&end={spike.day.isoformat()}"
        if spike.api_key_id > 0:
            query += f"&key={spike.api_key_id}"
        notices.append(
            {
                "level": "warning",
                "title": f"Usage spike on {spike.day:%a %-d %b}:",
                "text": f"{spike.scope_label} cost {dollars(spike.cost_micros)}, "
                f"{spike.ratio} × its 7-day average of {dollars(spike.baseline_micros)} a day "
                f"(flagged above {spike.factor.normalize()} ×).",
                "url": query,
                "link": "Show that day",
            }
        )
    return notices
