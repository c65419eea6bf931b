"""One way to show a moment (issue 12 item 6): in the organization's zone, the zone named, the
exact time on hover; plain text for emails and ISO 8601 with the offset for exports."""

import datetime as dt

from django.template import Context, Template

from core import when

MOMENT = dt.datetime(2026, 11, 29, 6, 30, 12, tzinfo=dt.UTC)


class Org:
    def __init__(self, zone):
        self.tzinfo = when.zone_of(zone)


def render(source, **context):
    return Template("{% load when %}" + source).render(Context(context))


def test_a_moment_is_shown_in_the_organizations_zone_with_the_zone_named():
    html = render("{{ at|when:org }}", at=MOMENT, org=Org("Europe/Paris"))
    assert html == (
        '<time datetime="2026-11-29T07:30:12+01:00" '
        'title="2026-11-29 07:30:12 CET (UTC+01:00) · 2026-11-29 06:30:12 UTC">'
        "29 Nov 2026 07:30 CET</time>"
    )


def test_zones_without_a_letter_abbreviation_read_as_an_offset():
    assert when.when_text(MOMENT, "Asia/Dubai") == "29 Nov 2026 10:30 UTC+04"
    assert when.when_text(MOMENT, None) == "29 Nov 2026 06:30 UTC"
    assert when.when_text(MOMENT, "Not/AZone") == "29 Nov 2026 06:30 UTC"


def test_summer_time_is_named_as_such():
    july = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)
    assert when.when_text(july, "America/New_York") == "1 Jul 2026 08:00 EDT"


def test_empty_values_and_dates_without_a_time():
    assert render("{{ at|when:org }}", at=None, org=None) == "—"
    assert render("{{ at|when_text:org }}", at=None, org=None) == ""
    assert render("{{ day|when }}", day=dt.date(2026, 3, 1)) == (
        '<time datetime="2026-03-01">1 Mar 2026</time>'
    )


def test_exports_get_iso_8601_with_the_zones_offset():
    assert when.when_iso(MOMENT, "America/Los_Angeles") == "2026-11-28T22:30:12-08:00"
    assert when.when_iso(None) == ""
