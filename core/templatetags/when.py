"""`{% load when %}`: moments in the organization's time zone (see core/when.py).

{{ value|when:organization }}        <time> with the exact time on hover; "—" when empty
{{ value|when_text:organization }}   plain text, for emails
"""

import datetime as dt

from django import template
from django.utils.html import format_html

from core import when as moments

register = template.Library()


@register.filter
def when(value, where=None):
    if value is None or value == "":
        return moments.EMPTY
    if not isinstance(value, dt.datetime):
        return format_html(
            '<time datetime="{}">{}</time>', value.isoformat(), moments.when_text(value)
        )
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        moments.when_iso(value, where),
        moments.when_exact(value, where),
        moments.when_text(value, where),
    )


@register.filter
def when_text(value, where=None):
    return moments.when_text(value, where)
