"""One way to show a moment: in the organization's time zone, with the zone named, the exact
time a hover away (issue 12, item 6). Pages use the template filter (`{% load when %}`), tables
`core.columns.WhenColumn`, emails and CSV cells the functions here.

    {{ key.created_at|when:organization }}
        -> <time datetime="…" title="exact time">29 Nov 2026 07:30 CET</time>
    {{ key.created_at|when_text:organization }}   29 Nov 2026 07:30 CET   (emails, plain text)
    when_iso(value, organization)            2026-11-29T07:30:12+01:00 (exports: exact, zoned)

The zone argument may be an organization (anything with `.tzinfo`), a zone name or a tzinfo;
None means UTC. A `date` (no time of day) is shown as a date, without a zone.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

DATE_FORMAT = "%-d %b %Y"  # 29 Nov 2026: no 11/29 vs 29/11 ambiguity
TIME_FORMAT = "%H:%M"
EMPTY = "—"


def zone_of(where: Any) -> dt.tzinfo:
    if where is None or where == "":
        return dt.UTC
    if isinstance(where, dt.tzinfo):
        return where
    if isinstance(where, str):
        try:
            return zoneinfo.ZoneInfo(where)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return dt.UTC
    tzinfo = getattr(where, "tzinfo", None)
    return tzinfo if isinstance(tzinfo, dt.tzinfo) else dt.UTC


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def zone_abbreviation(moment: dt.datetime) -> str:
    """ "CET", "UTC", "EST"; zones without a letter abbreviation ("+04") read "UTC+04"."""
    name = moment.tzname() or "UTC"
    return f"UTC{name}" if name[:1] in "+-" else name


def _offset(moment: dt.datetime) -> str:
    text = moment.strftime("%z")  # +0100
    return f"UTC{text[:3]}:{text[3:]}" if text else "UTC"


def local(value: dt.datetime, where: Any = None) -> dt.datetime:
    return _aware(value).astimezone(zone_of(where))


def when_text(value: dt.datetime | dt.date | None, where: Any = None) -> str:
    """ "29 Nov 2026 07:30 CET" in the zone of `where`; a date alone as "29 Nov 2026"."""
    if value is None or value == "":
        return ""
    if not isinstance(value, dt.datetime):
        return value.strftime(DATE_FORMAT)
    moment = local(value, where)
    return f"{moment:{DATE_FORMAT} {TIME_FORMAT}} {zone_abbreviation(moment)}"


def when_exact(value: dt.datetime, where: Any = None) -> str:
    """The hover text: to the second, with the offset, and in UTC when the zone is another."""
    moment = local(value, where)
    exact = f"{moment:%Y-%m-%d %H:%M:%S} {zone_abbreviation(moment)} ({_offset(moment)})"
    if moment.utcoffset():
        exact += f" · {_aware(value).astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
    return exact


def when_iso(value: dt.datetime | dt.date | None, where: Any = None) -> str:
    """For exports: ISO 8601 with the zone's offset, to the second."""
    if value is None or value == "":
        return ""
    if not isinstance(value, dt.datetime):
        return value.isoformat()
    return local(value, where).isoformat(timespec="seconds")
