"""The usage CSV: exactly what the dashboard's filters select, by hour, by day or by single
request, streamed in constant memory — rows come from a server-side cursor (Django's
`.iterator()` on PostgreSQL is a named cursor) and leave as they are written, so a year of single
events is never held in memory (bench/bench_export.py measures rows/s and peak RSS).

Costs are exact: `cost_usd` is the integer micro-dollars with six decimals, so the sum of a
file's rows is the page's total to the micro-dollar (and so to the cent). Day rows are the
organization's days (`UsageDaily`), hour and event rows carry their instant in the organization's
zone with its offset.
"""

from __future__ import annotations

import csv

from django.http import StreamingHttpResponse

from core import when
from members.listing import spreadsheet_safe
from orgs.models import Organization

from . import selectors
from .models import Source
from .selectors import UsageScope

HEADER = (
    "period_start", "workspace", "api_key_name", "api_key_prefix", "model", "source",
    "requests", "errors", "input_tokens", "output_tokens", "cache_creation_input_tokens",
    "cache_read_input_tokens", "cost_usd",
)  # fmt: skip
_ROLLUP = (
    "workspace_id", "api_key_id", "model", "source", "requests", "errors", "input_tokens",
    "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "cost_micros",
)  # fmt: skip
_EVENT = (
    "created_at", "workspace_id", "api_key_id", "model", "status", "input_tokens",
    "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "cost_micros",
)  # fmt: skip
CHUNK = 5000


class _Echo:
    def write(self, value):
        return value


def micros_text(micros: int) -> str:
    """Integer micro-dollars as dollars with six decimals, exactly ("-" never: costs are >= 0)."""
    whole, fraction = divmod(int(micros), 1_000_000)
    return f"{whole}.{fraction:06d}"


class _Labels:
    """Labels of ids, made spreadsheet-safe once per id rather than once per row."""

    def __init__(self, organization: Organization):
        self.names = selectors.Names.of(organization)
        self._keys: dict = {}
        self._workspaces: dict = {}
        self._models: dict = {}

    def key(self, key_id) -> tuple[str, str]:
        found = self._keys.get(key_id)
        if found is None:
            found = self._keys[key_id] = (
                spreadsheet_safe(self.names.key_name(key_id)) if key_id else "",
                self.names.key_prefix(key_id),
            )
        return found

    def workspace(self, workspace_id) -> str:
        found = self._workspaces.get(workspace_id)
        if found is None:
            found = self._workspaces[workspace_id] = (
                spreadsheet_safe(self.names.workspace(workspace_id)) if workspace_id else ""
            )
        return found

    def model(self, model: str) -> str:
        found = self._models.get(model)
        if found is None:
            found = self._models[model] = spreadsheet_safe(model)
        return found


def rows(scope: UsageScope, granularity: str, organization: Organization):
    """The CSV's lines (header first), as text, one chunk of rows at a time."""
    writer = csv.writer(_Echo(), lineterminator="\n")
    labels = _Labels(organization)
    yield writer.writerow(HEADER)
    if granularity == "event":
        yield from _event_lines(scope, writer, labels, organization)
        return
    if granularity == "hour":
        source, bucket = selectors.hourly_rows(scope), "hour"
    else:
        source, bucket = selectors.daily_rows(scope), "day"
    found = source.order_by(bucket, "workspace_id", "api_key_id", "model", "source")
    lines = []
    for row in found.values_list(bucket, *_ROLLUP).iterator(chunk_size=CHUNK):
        start, workspace_id, key_id, model, source_name, *counts, cost = row
        name, prefix = labels.key(key_id)
        lines.append(
            [
                when.when_iso(start, organization) if bucket == "hour" else start.isoformat(),
                labels.workspace(workspace_id), name, prefix, labels.model(model), source_name,
                *counts, micros_text(cost),
            ]
        )  # fmt: skip
        if len(lines) >= CHUNK:
            yield "".join(writer.writerow(line) for line in lines)
            lines = []
    if lines:
        yield "".join(writer.writerow(line) for line in lines)


def _event_lines(scope, writer, labels, organization):
    zone = organization.tzinfo
    gateway = Source.GATEWAY.value
    found = selectors.event_rows(scope).order_by("created_at", "request_id")
    lines = []
    for row in found.values_list(*_EVENT).iterator(chunk_size=CHUNK):
        created_at, workspace_id, key_id, model, status, *tokens, cost = row
        name, prefix = labels.key(key_id)
        lines.append(
            (
                created_at.astimezone(zone).isoformat(timespec="seconds"),
                labels.workspace(workspace_id), name, prefix, labels.model(model), gateway,
                1, 0 if 200 <= status <= 299 else 1, *tokens, micros_text(cost),
            )
        )  # fmt: skip
        if len(lines) >= CHUNK:
            yield "".join(writer.writerow(line) for line in lines)
            lines = []
    if lines:
        yield "".join(writer.writerow(line) for line in lines)


def filename(scope: UsageScope, granularity: str, organization: Organization) -> str:
    return f"{organization.slug}-usage-{scope.start}-{scope.end}-by-{granularity}.csv"


def csv_response(scope: UsageScope, granularity: str, organization: Organization):
    response = StreamingHttpResponse(
        rows(scope, granularity, organization), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = (
        f'attachment; filename="{filename(scope, granularity, organization)}"'
    )
    return response
