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

from django.db import connection, transaction
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
    """The CSV's lines (header first), a chunk of rows at a time: PostgreSQL formats them
    itself (COPY … TO STDOUT, 14 times the rows/s of a named cursor read through Python:
    bench/bench_export.py); other databases (SQLite in `make run`) go through Python."""
    if connection.vendor == "postgresql":
        return _copied_lines(scope, granularity, organization)
    return python_lines(scope, granularity, organization)


def python_lines(scope: UsageScope, granularity: str, organization: Organization):
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


# -- PostgreSQL: COPY (SELECT …) TO STDOUT, the rows formatted by the database ------------------

# Spreadsheet-safe text (members.listing.spreadsheet_safe, in SQL).
_SAFE = (
    "CASE WHEN left({0}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) "
    "THEN chr(39) || {0} ELSE {0} END"
)
# ISO 8601 with the offset of the session's time zone: the organization's, set for the statement
# (set_config(…, true) below; the zone is a name from zoneinfo, validated on the organization).
_ISO = "to_char({0}, 'YYYY-MM-DD\"T\"HH24:MI:SSTZH:TZM')"
BUFFER = 256 * 1024  # bytes of CSV per chunk sent (psycopg hands over one row at a time)


_COUNTS = (
    "e.input_tokens, e.output_tokens, e.cache_creation_input_tokens, e.cache_read_input_tokens, "
    # Integer arithmetic, not numeric: whole dollars, then six digits of micro-dollars.
    "(e.cost_micros / 1000000)::text || '.' || lpad((e.cost_micros %% 1000000)::text, 6, '0')"
)
_LABELS = (
    "LEFT JOIN unnest(%s::bigint[], %s::text[], %s::text[]) AS k (id, name, prefix) "
    "ON k.id = e.api_key_id "
    "LEFT JOIN unnest(%s::bigint[], %s::text[]) AS w (id, name) ON w.id = e.workspace_id"
)
_KEY = "coalesce(k.name, CASE WHEN e.api_key_id <> 0 THEN 'Key #' || e.api_key_id END)"
_WORKSPACE = (
    "coalesce(w.name, CASE WHEN e.workspace_id <> 0 THEN 'Workspace #' || e.workspace_id END)"
)


def copy_statement(scope: UsageScope, granularity: str) -> tuple[str, list]:
    """The COPY statement of exactly the selectors' rows (their SQL as a subquery, so every
    filter and what the member may see apply unchanged) with the labels joined; and the
    parameters of the subquery (the labels' follow)."""
    if granularity == "event":
        inner = selectors.event_rows(scope).values(
            "request_id", "created_at", "workspace_id", "api_key_id", "model", "status",
            "input_tokens", "output_tokens", "cache_creation_input_tokens",
            "cache_read_input_tokens", "cost_micros",
        )  # fmt: skip
        period, order = _ISO.format("e.created_at"), "e.created_at, e.request_id"
        counts = (
            "'gateway', 1, CASE WHEN e.status BETWEEN 200 AND 299 THEN 0 ELSE 1 END, " + _COUNTS
        )
    else:
        bucket = "hour" if granularity == "hour" else "day"
        found = selectors.hourly_rows(scope) if bucket == "hour" else selectors.daily_rows(scope)
        inner = found.values(bucket, *_ROLLUP)
        period = _ISO.format("e.hour") if bucket == "hour" else "e.day::text"
        order = f"e.{bucket}, e.workspace_id, e.api_key_id, e.model, e.source"
        counts = "e.source, e.requests, e.errors, " + _COUNTS
    inner_sql, inner_params = inner.order_by().query.sql_with_params()
    model = _SAFE.format("nullif(e.model, '')")
    sql = (
        f"COPY (SELECT {period}, {_WORKSPACE}, {_KEY}, k.prefix, {model}, {counts} "  # noqa: S608
        f"FROM ({inner_sql}) e {_LABELS} ORDER BY {order}) TO STDOUT (FORMAT csv)"
    )
    return sql, list(inner_params)


def _copied_lines(scope: UsageScope, granularity: str, organization: Organization):
    labels = _Labels(organization)
    names = labels.names
    imported_keys = [pk for pk, n in names.imported.items() if n.kind == n.Kind.API_KEY]
    keys, workspaces = [*names.keys, *imported_keys], list(names.workspaces)
    sql, params = copy_statement(scope, granularity)
    params += [
        keys, [labels.key(pk)[0] for pk in keys], [labels.key(pk)[1] for pk in keys],
        workspaces, [labels.workspace(pk) for pk in workspaces],
    ]  # fmt: skip
    yield ",".join(HEADER) + "\n"
    # Rows streamed as PostgreSQL sends them, never held whole; a download cut short cancels
    # the statement (psycopg does, leaving the connection usable). The time zone is set for
    # this transaction only, and put back before anything else reads through the connection
    # (Django reads times as UTC).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('TimeZone', %s, true)", [organization.timezone])
        try:
            with connection.wrap_database_errors, cursor.cursor.copy(sql, params) as copy:
                buffer = bytearray()
                for chunk in copy:
                    buffer += chunk
                    if len(buffer) >= BUFFER:
                        yield bytes(buffer)
                        buffer.clear()
                if buffer:
                    yield bytes(buffer)
        finally:
            cursor.execute("SELECT set_config('TimeZone', %s, true)", [connection.timezone_name])


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
