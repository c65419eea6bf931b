"""Billing periods: calendar months in the organization's time zone.

start, end = period_of(tz, now)          # dates of that zone: first day, first day after
reset = period_end_at(tz, now)           # the aware instant the next period begins
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta


def zone(name: str | zoneinfo.ZoneInfo) -> zoneinfo.ZoneInfo:
    if isinstance(name, zoneinfo.ZoneInfo):
        return name
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def previous_month(day: date) -> date:
    return date(day.year - 1, 12, 1) if day.month == 1 else date(day.year, day.month - 1, 1)


def period_of(tz, now: datetime | None = None) -> tuple[date, date]:
    local = (now or datetime.now(UTC)).astimezone(zone(tz))
    start = date(local.year, local.month, 1)
    return start, next_month(start)


def start_instant(tz, day: date) -> datetime:
    """Midnight of `day` in the zone, as an aware datetime."""
    return datetime.combine(day, time.min, tzinfo=zone(tz))


def period_end_at(tz, now: datetime | None = None) -> datetime:
    return start_instant(tz, period_of(tz, now)[1])


def period_label(start: date) -> str:
    return f"{start:%B %Y}"


def elapsed_fraction(tz, now: datetime | None = None) -> tuple[float, int, int]:
    """(fraction of the period gone, whole days gone, days in the period)."""
    now = now or datetime.now(UTC)
    start, end = period_of(tz, now)
    begin, finish = start_instant(tz, start), start_instant(tz, end)
    total = (finish - begin).total_seconds()
    gone = (now - begin).total_seconds()
    return gone / total, int(gone // 86400), (end - start).days


def month_key(start: date) -> str:
    return f"{start:%Y-%m}"


def parse_month(value: str) -> date | None:
    try:
        parsed = datetime.strptime(value, "%Y-%m")
    except (TypeError, ValueError):
        return None
    if not 2000 <= parsed.year <= 2100:
        return None
    return date(parsed.year, parsed.month, 1)


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: datetime) -> datetime:
    floor = hour_floor(moment)
    return floor if floor == moment.astimezone(UTC) else floor + timedelta(hours=1)


def moment_text(moment: datetime) -> str:
    """'1 Dec 2026 00:00 CET' in the moment's own zone."""
    name = moment.tzname() or "UTC"
    if name[:1] in "+-":
        name = f"UTC{name}"
    return f"{moment:%-d %b %Y %H:%M} {name}"
