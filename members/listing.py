"""The one way list pages are built: a django-tables2 table, a django-filter FilterSet, sorting,
pagination, an htmx swap of just the table, and a CSV export of what is filtered."""

from django_filters.views import FilterView
from django_tables2 import SingleTableMixin
from django_tables2.export.views import ExportMixin

from .access import OrgViewMixin


class OrgTableView(OrgViewMixin, ExportMixin, SingleTableMixin, FilterView):
    """Subclass with `capability`, `table_class`, `filterset_class`, `template_name`,
    `export_name` and `get_queryset()` scoped to `self.organization`."""

    # The table paginates; ListView must not paginate the queryset too (a second COUNT query).
    paginate_by = None
    table_pagination = {"per_page": 25}
    export_formats = ("csv",)
    export_trigger_param = "_export"
    table_template = "partials/table.html"
    # Show the table even when the filter form is not valid, rather than an empty page.
    strict = False

    def get_export_filename(self, export_format):
        return f"{self.organization.slug}-{self.export_name}.{export_format}"

    def get_template_names(self):
        # The filter form, sort links and pagination ask for the table region only.
        if getattr(self.request, "htmx", False) and self.request.htmx.target == "table-region":
            return [self.table_template]
        return super().get_template_names()

    def get_table_kwargs(self):
        kwargs = super().get_table_kwargs()
        if self.request.GET.get(self.export_trigger_param):
            # Exports carry every column, not just the ones shown by default.
            kwargs["exclude"] = ()
        return kwargs
