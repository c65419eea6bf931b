import django_tables2 as tables

from .models import AuditEvent
from .registry import label_for


class AuditEventTable(tables.Table):
    created_at = tables.DateTimeColumn(verbose_name="Time", format="Y-m-d H:i:s")
    actor_label = tables.Column(verbose_name="Actor")
    action = tables.Column()
    target_label = tables.Column(verbose_name="Target")
    ip_address = tables.Column(verbose_name="IP address")

    class Meta:
        model = AuditEvent
        fields = (
            "created_at", "actor_label", "action", "target_label", "ip_address",
            "user_agent", "before", "after",
        )  # fmt: skip
        exclude = ("user_agent", "before", "after")
        order_by = ("-created_at",)
        empty_text = "No audit events."

    def render_action(self, value):
        return label_for(value)
