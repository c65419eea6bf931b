"""The usage dashboard's breakdown: one row per API key, model or workspace of the period, sortable
(django-tables2 sorts the rows of `selectors.breakdown` in Python: a period has few of them)."""

import django_tables2 as tables
from django.utils.html import format_html

from .selectors import dollars_of

LABELS = {"key": "API key", "model": "Model", "workspace": "Workspace"}


class CountColumn(tables.Column):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault(
            "attrs", {"td": {"class": "text-end text-nowrap"}, "th": {"class": "text-end"}}
        )
        super().__init__(*args, **kwargs)

    def render(self, value):
        return f"{int(value or 0):,}"


class BreakdownTable(tables.Table):
    label = tables.Column(verbose_name="API key", order_by=("label",))
    requests = CountColumn(verbose_name="Requests")
    errors = CountColumn(verbose_name="Errors")
    input_tokens = CountColumn(verbose_name="Input")
    output_tokens = CountColumn(verbose_name="Output")
    cache_creation_input_tokens = CountColumn(verbose_name="Cache write")
    cache_read_input_tokens = CountColumn(verbose_name="Cache read")
    cost_micros = CountColumn(verbose_name="Cost")

    class Meta:
        order_by = ("-cost_micros",)
        empty_text = "No usage in this period."

    def __init__(self, *args, group: str = "key", **kwargs):
        super().__init__(*args, **kwargs)
        self.columns["label"].column.verbose_name = LABELS[group]

    def render_label(self, record):
        if record["detail"]:
            # One element: at phone width a stacked cell lays its children side by side, and a
            # long name beside the key's prefix ran out of the card.
            return format_html(
                '<span>{} <code class="small text-nowrap">{}</code></span>',
                record["label"],
                record["detail"],
            )
        return record["label"]

    def render_cost_micros(self, value):
        return f"${dollars_of(value):,.2f}"
