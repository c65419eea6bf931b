import django_tables2 as tables

from core.columns import WhenColumn

from .models import Workspace


class WorkspaceTable(tables.Table):
    name = tables.Column(linkify=False)
    status = tables.Column(empty_values=(), orderable=False, verbose_name="Status")
    # In the CSV export only.
    is_default = tables.Column(verbose_name="Default")
    created_at = WhenColumn(verbose_name="Created")
    archived_at = WhenColumn(verbose_name="Archived", visible=False)
    actions = tables.TemplateColumn(
        template_name="orgs/workspace_actions.html",
        orderable=False,
        verbose_name="",
        exclude_from_export=True,
    )

    class Meta:
        model = Workspace
        fields = ("name", "status", "is_default", "created_at", "archived_at", "actions")
        sequence = ("name", "status", "is_default", "created_at", "archived_at", "actions")
        order_by = ("name",)
        empty_text = "No workspaces."

    def render_status(self, record):
        return "Archived" if record.is_archived else "Active"

    def value_status(self, record):
        return self.render_status(record)

    def render_is_default(self, value):
        return "Yes" if value else ""
