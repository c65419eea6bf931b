"""Table columns every list page shares (django-tables2).

`WhenColumn`: a moment in the organization's zone with the exact time on hover (core/when.py);
in CSV exports, ISO 8601 with the zone's offset. The zone is the organization of the page
(`table.request.organization`, set by `org_view`), or `table.organization` if a table is built
outside a request.

    created_at = WhenColumn(verbose_name="Created")
    last_used_at = WhenColumn(verbose_name="Last used", default="Never")
"""

import django_tables2 as tables

from . import when as moments
from .templatetags.when import when as when_html


def table_zone(table):
    organization = getattr(getattr(table, "request", None), "organization", None)
    return organization or getattr(table, "organization", None)


class WhenColumn(tables.Column):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("attrs", {"td": {"class": "text-nowrap"}})
        super().__init__(*args, **kwargs)

    def render(self, value, table):
        return when_html(value, table_zone(table))

    def value(self, value, table):
        return moments.when_iso(value, table_zone(table))
