import json

import django_tables2 as tables

from .models import AuditEvent
from .registry import label_for


class AuditEventTable(tables.Table):
    created_at = tables.DateTimeColumn(verbose_name="Time", format="Y-m-d H:i:s")
    actor_label = tables.Column(verbose_name="Actor")
    action = tables.Column()
    target_label = tables.Column(verbose_name="Target")
    ip_address = tables.Column(verbose_name="IP address")
    # In the CSV export only.
    user_agent = tables.Column(verbose_name="User agent", visible=False)
    before = tables.Column(visible=False)
    after = tables.Column(visible=False)

    class Meta:
        model = AuditEvent
        fields = (
            "created_at", "actor_label", "action", "target_label", "ip_address",
            "user_agent", "before", "after",
        )  # fmt: skip
        order_by = ("-created_at",)
        empty_text = "No audit events."

    def render_action(self, value):
        return label_for(value)

    def value_action(self, value):
        # The export keeps the registry's stable name (`apikey.created`), not its label.
        return value

    def value_before(self, value):
        return _as_json(value)

    def value_after(self, value):
        return _as_json(value)


def _as_json(value) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)
