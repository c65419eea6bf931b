"""The usage dashboard's breakdown: one row per API key, model or workspace of the period, sortable
(django-tables2 sorts the rows of `selectors.breakdown` in Python: a period has few of them)."""

import django_tables2 as tables
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString

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
        # templates/django_tables2/console.html with the rows written by `tbody_html`.
        template_name = "usage/_breakdown_table.html"

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

    def tbody_html(self) -> SafeString | None:
        """The page's rows as markup, byte for byte what the table template's loop writes
        (templates/django_tables2/console.html): that loop called each of the page's ~200 cells
        through django-tables2 (accessors, the render method's signature, the column's attrs
        and header again for every cell) and was the larger part of the page's CPU
        (bench_dashboard). None without rows: the template writes its empty row then."""
        rows = list(self.paginated_rows)
        if not rows:
            return None
        columns = []
        for bound in self.columns:
            opening = (
                f"\n  <td {bound.attrs['td'].as_html()} "
                f'data-label="{conditional_escape(bound.header)}">'
            )
            columns.append((bound, bound.column.empty_values, opening))
        parts = [f"\n                <tbody {self.attrs['tbody'].as_html()}>\n                "]
        for row in rows:
            record = row.record
            parts.append(f"\n                    \n<tr {row.attrs.as_html()}>\n  ")
            for bound, empty, opening in columns:
                value = record.get(bound.name)
                cell = bound.default if value in empty else self._cell(bound, record, value)
                parts.append(f"{opening}{conditional_escape(cell)}</td>\n  ")
            parts.append("\n</tr>\n\n                ")
        parts.append("\n                </tbody>\n            ")
        return SafeString("".join(parts))

    def _cell(self, bound, record, value):
        """What django-tables2 would render: the table's render_<name>, else the column's."""
        if bound.name == "label":
            return self.render_label(record)
        if bound.name == "cost_micros":
            return self.render_cost_micros(value)
        return bound.column.render(value)
