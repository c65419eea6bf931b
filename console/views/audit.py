"""The audit log (Admins)."""

from audit.filters import AuditEventFilter
from audit.selectors import events_for_organization
from audit.tables import AuditEventTable
from members.listing import OrgTableView


class AuditLogView(OrgTableView):
    capability = "audit.view"
    table_class = AuditEventTable
    filterset_class = AuditEventFilter
    template_name = "console/audit_log.html"
    export_name = "audit-log"

    def get_queryset(self):
        return events_for_organization(self.organization)

    def get_context_data(self, **kwargs):
        return super().get_context_data(nav="audit", **kwargs)
