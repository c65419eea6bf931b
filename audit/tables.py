import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from core.columns import WhenColumn

from .models import AuditEvent
from .registry import describe, target_type_label


class AuditEventTable(tables.Table):
    """The log as sentences: "admin@example.com revoked API key Deploy (csk_AbCd…wxyz)".
    Exports are streamed by the view (console/views/audit.py), not built from this table."""

    created_at = WhenColumn(verbose_name="Time", order_by=("id",))
    actor_label = tables.Column(verbose_name="Actor", default="The system")
    event = tables.Column(
        empty_values=(), orderable=False, verbose_name="What happened", accessor="action"
    )
    target_type = tables.Column(verbose_name="Target type", default="—")
    ip_address = tables.Column(verbose_name="IP address", default="—")

    class Meta:
        model = AuditEvent
        fields = ("created_at", "actor_label", "event", "target_type", "ip_address")
        order_by = ("-created_at",)
        empty_text = "No audit events."

    def render_event(self, record):
        url = reverse("audit_event", args=[self.request.organization.slug, record.pk])
        return format_html(
            '<a href="{}" hx-boost="false" data-action="{}">{}</a>',
            url,
            record.action,
            describe(record),
        )

    def render_target_type(self, value):
        return target_type_label(value)
