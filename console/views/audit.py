"""The audit log (Admins): the list with its filters, one event with its before/after, and the
exports — CSV of what is filtered, and the organization's whole chain as JSON Lines with each
event's hash and its predecessor's, which `manage.py verify_audit_chain --file` checks offline."""

import csv
import json

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit import chain, registry
from audit.filters import AuditEventFilter
from audit.models import AuditEvent
from audit.selectors import events_for_organization
from audit.services import chain_anchor, chain_events
from audit.tables import AuditEventTable
from core import when
from members.access import org_view
from members.listing import OrgTableView, spreadsheet_safe

CSV_HEADER = [
    "time", "actor", "action", "description", "target_type", "target", "target_id",
    "ip_address", "user_agent", "before", "after", "hash", "prev_hash",
]  # fmt: skip


class AuditLogView(OrgTableView):
    capability = "audit.view"
    table_class = AuditEventTable
    filterset_class = AuditEventFilter
    template_name = "console/audit_log.html"
    export_name = "audit-log"
    # A filter value that is wrong shows its error over an empty list, never the whole log.
    strict = True

    def get_queryset(self):
        return events_for_organization(self.organization)

    def get_context_data(self, **kwargs):
        return super().get_context_data(nav="audit", **kwargs)

    def create_export(self, export_format):
        """CSV of exactly what is filtered, streamed: constant memory for any size of log."""
        events = self.object_list.order_by("-id")
        organization = self.organization
        writer = csv.writer(_Echo())

        def rows():
            yield writer.writerow(CSV_HEADER)
            for event in events.iterator(chunk_size=2000):
                yield writer.writerow(
                    [spreadsheet_safe(value) for value in _csv_row(event, organization)]
                )

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="{organization.slug}-audit-log.csv"'
        )
        return response


class _Echo:
    def write(self, value):
        return value


def _json_cell(value) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _csv_row(event: AuditEvent, organization) -> list:
    return [
        when.when_iso(event.created_at, organization),
        event.actor_label,
        event.action,
        registry.render(event),
        event.target_type,
        event.target_label,
        event.target_id,
        event.ip_address or "",
        event.user_agent,
        _json_cell(event.before),
        _json_cell(event.after),
        event.hash,
        event.prev_hash,
    ]


@org_view("audit.view")
def audit_event(request, event_id: int):
    event = get_object_or_404(events_for_organization(request.organization), pk=event_id)
    context = {
        "nav": "audit",
        "event": event,
        "sentence": registry.describe(event),
        "action_label": registry.label_for(event.action),
        "target_type": registry.target_type_label(event.target_type),
        "changes": _changes(event.before, event.after),
    }
    return render(request, "console/audit_event.html", context)


def _changes(before: dict | None, after: dict | None) -> list[dict]:
    """Before/after as rows a person reads: one per field, changed fields marked."""
    before, after = before or {}, after or {}
    rows = []
    for field in sorted(
        set(before) | set(after), key=lambda name: (registry.field_label(name), name)
    ):
        old, new = before.get(field), after.get(field)
        rows.append(
            {
                "field": registry.field_label(field),
                "name": field,
                "before": _shown(field, old) if field in before else None,
                "after": _shown(field, new) if field in after else None,
                "changed": field not in before or field not in after or old != new,
            }
        )
    return rows


def _shown(field: str, value) -> str:
    value = registry.value_label(field, value)
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


@require_GET
@org_view("audit.view")
def audit_export_chain(request):
    """The organization's whole chain (from its last archive on) as JSON Lines, streamed."""
    organization = request.organization
    events = chain_events(organization.pk)
    # Events recorded while this streams belong to the next export: the file ends where it began.
    last_id = events.order_by("-id").values_list("id", flat=True).first() or 0
    anchor = chain_anchor(organization.pk)

    def lines():
        yield chain.header_line(
            organization=organization, anchor=anchor, exported_at=timezone.now().isoformat()
        )
        count, last_hash = 0, anchor
        for event in events.filter(id__lte=last_id).iterator(chunk_size=2000):
            yield chain.event_line(event)
            count, last_hash = count + 1, event.hash
        yield chain.end_line(events=count, last_hash=last_hash)

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = (
        f'attachment; filename="{organization.slug}-audit-chain-{stamp}.jsonl"'
    )
    return response
