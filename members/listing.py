"""The one way list pages are built: a django-tables2 table, a django-filter FilterSet, sorting,
pagination, an htmx swap of just the table, and a CSV export of what is filtered.

Columns a table shows only in its export are declared `visible=False` (django-tables2 exports
invisible columns); `Meta.exclude` would drop them from the export too."""

from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest
from django.utils.cache import patch_vary_headers
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin
from django_tables2.export import TableExport
from django_tables2.export.views import ExportMixin
from tablib import Dataset

from .access import OrgViewMixin

MAX_PER_PAGE = 100
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class BoundedPaginator(Paginator):
    """`?per_page=` comes from the URL: keep it within 1..MAX_PER_PAGE."""

    def __init__(self, object_list, per_page, *args, **kwargs):
        super().__init__(object_list, min(max(int(per_page), 1), MAX_PER_PAGE), *args, **kwargs)


def spreadsheet_safe(value):
    """Text a spreadsheet would evaluate gets a leading quote, so it is shown, never run."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class SpreadsheetSafeExport(TableExport):
    def table_to_dataset(self, table, exclude_columns, dataset_kwargs=None):
        dataset = Dataset(**(dataset_kwargs or {}))
        rows = table.as_values(exclude_columns=exclude_columns)
        dataset.headers = next(rows)
        for row in rows:
            dataset.append([spreadsheet_safe(value) for value in row])
        return dataset


class OrgTableView(OrgViewMixin, ExportMixin, SingleTableMixin, FilterView):
    """Subclass with `capability`, `table_class`, `filterset_class`, `template_name`,
    `export_name` and `get_queryset()` scoped to `self.organization`."""

    # The table paginates; ListView must not paginate the queryset too (a second COUNT query).
    paginate_by = None
    table_pagination = {"per_page": 25, "paginator_class": BoundedPaginator}
    export_class = SpreadsheetSafeExport
    export_formats = (TableExport.CSV,)
    export_trigger_param = "_export"
    table_template = "partials/table.html"
    # Show the table even when the filter form is not valid, rather than an empty page.
    strict = False

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        # Filters the user set (not a view's defaults): an empty list then says "nothing
        # matches" with a way back, rather than the page's "nothing yet" empty state.
        context["filters_applied"] = sum(
            1 for name in context["filter"].form.fields if self.request.GET.get(name, "").strip()
        )
        return context

    def get_export_filename(self, export_format):
        return f"{self.organization.slug}-{self.export_name}.{export_format}"

    def get_template_names(self):
        # The filter form, sort links and pagination ask for the table region only.
        if getattr(self.request, "htmx", False) and self.request.htmx.target == "table-region":
            return [self.table_template]
        return super().get_template_names()

    def render_to_response(self, context, **kwargs):
        export_format = self.request.GET.get(self.export_trigger_param)
        if export_format in self.export_formats:
            return self.create_export(export_format)
        if export_format:
            formats = ", ".join(self.export_formats)
            return HttpResponseBadRequest(
                f"This list exports as {formats} only.", content_type="text/plain; charset=utf-8"
            )
        response = super().render_to_response(context, **kwargs)
        # One URL answers with the whole page or, to htmx, the table alone: caches (the
        # browser's back/forward too) must keep them apart.
        patch_vary_headers(response, ("HX-Request", "HX-Target"))
        return response
