"""Ingestion of the usage stream: Redis stream → raw events + hourly, daily and monthly rollups,
exactly once, fast, and without ever giving up on a fault.

    store_events(events)              # one batch: events inserted once, rollups of those only
    ingest_batch(consumer="w1")       # read a batch from the stream, store it, then XACK + XDEL
    Consumer().run(stop)              # the loop the Celery worker, consume_usage and make run run

**Exactly once.** A batch is one transaction: the events are inserted with ON CONFLICT DO
NOTHING on (request_id, created_at) and the rollups (`UsageHourly`, `UsageDaily`,
`UsageMonthly`) are upserted with the counters of the rows that insert actually returned. A
batch delivered twice (a spool replay, a consumer killed after its commit and before its XACK,
two consumers holding the same claimed entries) inserts nothing the second time and so adds
nothing to the rollups. Stream entries are acknowledged only after the commit.

**Fast (PostgreSQL).** Events are validated in one tight Python loop into COPY text lines,
COPY'd into a per-connection temporary staging table, and one statement does the rest:
INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING, feeding three upserts grouped by bucket
(bench/bench_ingest.py; docs/decisions/0005-usage-ingestion.md). SQLite (`make run`) takes the
portable path of the same function: the ORM, no COPY, rollups added with F() updates.

**Bad input.** An event that is not JSON, not an object, or carries a value no request could
have (no organization, negative or absurd counts or cost, a time outside ten years back to a
day ahead) is refused: kept on the dead-letter stream `usage:events:refused` with the reason,
counted in `usage:ingest:stats`, and acknowledged so the consumer moves on. Strings are made
storable (NUL removed, cut to the column). Events of a deleted key, workspace or organization
are stored: they are history, and the ids are plain integers. If the database refuses a batch
for its data, the batch is split in halves until the event it refuses is found and set aside.

**Consumers.** One consumer group shared by every worker on every machine. Each consumer keeps
a heartbeat key alive (`HEARTBEAT_TTL`); every `CLAIM_EVERY` seconds a consumer looks for group
members without a heartbeat, claims their pending entries (XCLAIM, so it alone gets them), and
removes them from the group once nothing is pending (atomically, in Lua). A SIGKILLed worker's
batch is thus ingested by another within a few seconds. A Redis or database fault never ends
the loop: it backs off (up to `MAX_BACKOFF`), re-reads its own pending entries, and goes on.

After each batch that stored something, `usage.signals.usage_ingested` is sent (billing
listens; usage never imports billing).
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import threading
import time
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import orjson
import redis
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.models import F

from core import hotpath

from . import partitions
from .models import Source, UsageDaily, UsageEvent, UsageHourly, UsageMonthly
from .signals import IngestedSpan, usage_ingested
from .stream import BATCH_FIELD, FIELD, FLUSH_BATCH, stream_key

logger = logging.getLogger(__name__)

GROUP = "usage-ingest"
BATCH = 10_000  # entries per XREADGROUP, events per transaction (settings.USAGE_INGEST_BATCH)
BLOCK_MS = 1000  # a consumer waits this long for new entries, then looks around
HEARTBEAT_TTL = 3.0  # seconds a consumer counts as alive after its last heartbeat
HEARTBEAT_EVERY = 1.0
CLAIM_EVERY = 1.0  # seconds between looks for dead consumers
CLAIM_MIN_IDLE_MS = 1000  # an entry is claimed only if nobody touched it for this long
MAX_BACKOFF = 5.0

MAX_COUNT = 10**12  # tokens, requests or seconds in one request: beyond, the event is absurd
MAX_COST_MICROS = 10**15  # a billion dollars: beyond, the event is absurd
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PAST_SECONDS = 10 * 366 * 86400  # events older than ten years are refused (absurd)
FUTURE_SECONDS = 86400  # and events more than a day ahead (a clock gone wrong)

# The event table's columns, in COPY order.
COLUMNS = (
    "request_id", "upstream_request_id", "created_at", "organization_id", "workspace_id",
    "api_key_id", "endpoint", "model", "stream", "status", "error_type", "input_tokens",
    "output_tokens", "cache_creation_input_tokens", "cache_creation_1h_input_tokens",
    "cache_read_input_tokens", "web_search_requests", "web_fetch_requests",
    "code_execution_seconds", "service_tier", "cost_micros", "server_tool_cost_micros",
    "fallback_priced", "latency_ms",
)  # fmt: skip
_COUNTS = (
    "input_tokens", "output_tokens", "cache_creation_input_tokens",
    "cache_creation_1h_input_tokens", "cache_read_input_tokens", "web_search_requests",
    "web_fetch_requests", "code_execution_seconds",
)  # fmt: skip
# Rollup counters summed from events (requests, errors, fallback_priced_requests are counted).
_SUMMED = (*_COUNTS, "cost_micros", "server_tool_cost_micros")
ROLLUP_COUNTERS = ("requests", "errors", *_SUMMED, "fallback_priced_requests")


# -- keys and stats ---------------------------------------------------------------------------


def dead_letter_key() -> str:
    """Events refused, with the reason (`XRANGE` it; XADD one back to the stream after a fix)."""
    return stream_key() + ":refused"


def stats_key() -> str:
    return stream_key() + ":stats"


def heartbeat_key(consumer: str) -> str:
    return f"{stream_key()}:consumer:{consumer}"


def last_heartbeat_key() -> str:
    """When any consumer last beat (epoch seconds): /readyz wants one within a minute."""
    return f"{stream_key()}:heartbeat"


def stats(client=None) -> dict[str, int]:
    """Counters since the stream began: `stored`, `duplicates`, `refused`."""
    raw = (client or hotpath.client()).hgetall(stats_key())
    return {k.decode(): int(v) for k, v in raw.items()}


def ensure_group(client) -> None:
    """Create the consumer group (and the stream) unless they exist; called after every fault,
    so a flushed or restarted Redis needs no restart of the consumers."""
    try:
        client.xgroup_create(stream_key(), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


# -- one event ----------------------------------------------------------------------------------


class Refusal(ValueError):
    """An event that cannot be stored as it is; the message is the reason."""


def _text(value, limit: int) -> str:
    if value is None:
        return ""
    text = value if type(value) is str else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text[:limit]


def _count(event: dict, name: str) -> int:
    value = event.get(name, 0)
    if type(value) is not int:
        if value is None:
            return 0
        raise Refusal(f"{name} is not an integer")
    if value < 0 or value > MAX_COUNT:
        raise Refusal(f"{name} is out of range")
    return value


def _id(value, name: str, required: bool = False) -> int | None:
    if value is None and not required:
        return None
    if type(value) is not int or value < 0 or value >= 2**63 or (required and value == 0):
        raise Refusal(f"{name} is not an id")
    return value


_INT = {int}
_IDS = {int, type(None)}


def clean_event(event, now: float) -> tuple:
    """The row of an event, in `COLUMNS` order, or `Refusal`. `created_at` is in integer
    microseconds since the epoch: both paths turn it into the same instant, exactly.

    Strings that an upstream or a client controls are made storable (NUL removed, cut to the
    column); numbers that no request could have refuse the whole event. Written for speed (it
    runs for every event): checks over whole tuples first, the detailed ones only on failure."""
    if type(event) is not dict:
        raise Refusal("not an event (a JSON object)")
    get = event.get
    request_id = get("request_id")
    if type(request_id) is not str or not 0 < len(request_id) <= 64 or "\x00" in request_id:
        raise Refusal("request_id missing or invalid")
    moment = get("time")
    if type(moment) is not float and type(moment) is not int:
        raise Refusal("time missing or invalid")
    if not now - PAST_SECONDS <= moment <= now + FUTURE_SECONDS:
        raise Refusal("time out of range")
    status = get("status", 0)
    if type(status) is not int or not 0 <= status <= 999:
        raise Refusal("status invalid")
    cost = get("cost_micros", 0)
    tools = get("server_tool_cost_micros", 0)
    if type(cost) is not int or type(tools) is not int or not 0 <= tools <= cost <= MAX_COST_MICROS:
        raise Refusal("cost out of range")
    ids = (get("organization_id"), get("workspace_id"), get("api_key_id"))
    if set(map(type, ids)) - _IDS or not ids[0] or not 0 < ids[0] < 2**63:
        ids = (
            _id(ids[0], "organization_id", required=True),
            _id(ids[1], "workspace_id"),
            _id(ids[2], "api_key_id"),
        )
    elif (ids[1] is not None and not 0 <= ids[1] < 2**63) or (
        ids[2] is not None and not 0 <= ids[2] < 2**63
    ):
        raise Refusal("workspace_id or api_key_id is not an id")
    counts = (
        get("input_tokens", 0), get("output_tokens", 0), get("cache_creation_input_tokens", 0),
        get("cache_creation_1h_input_tokens", 0), get("cache_read_input_tokens", 0),
        get("web_search_requests", 0), get("web_fetch_requests", 0),
        get("code_execution_seconds", 0),
    )  # fmt: skip
    if set(map(type, counts)) != _INT or min(counts) < 0 or max(counts) > MAX_COUNT:
        counts = tuple(_count(event, name) for name in _COUNTS)
    if counts[3] > counts[2]:
        raise Refusal("cache_creation_1h_input_tokens exceeds cache_creation_input_tokens")
    latency = get("latency_ms", 0.0)
    if (type(latency) is not float and type(latency) is not int) or not 0 <= latency < 1e9:
        latency = 0.0
    strings = (get("upstream_request_id"), get("endpoint"), get("model"), get("error_type"),
               get("service_tier"))  # fmt: skip
    upstream, endpoint, model, error_type, tier = strings
    if set(map(type, strings)) != _STR or "\x00" in "".join(strings):
        upstream, endpoint, model, error_type, tier = (_text(v, 512) for v in strings)
    return (
        request_id,
        upstream[:128],
        round(moment * 1_000_000),
        ids[0],
        ids[1],
        ids[2],
        endpoint[:32] or "messages",
        model[:128],
        get("stream") is True,
        status,
        error_type[:64],
        *counts,
        tier[:32],
        cost,
        tools,
        get("fallback_priced") is True,
        float(latency),
    )


_STR = {str}


def event_row(event: dict, now: float | None = None) -> UsageEvent:
    """The `UsageEvent` an event becomes (raises `Refusal`)."""
    row = clean_event(event, time.time() if now is None else now)
    values = dict(zip(COLUMNS, row, strict=True))
    values["created_at"] = instant(values["created_at"])
    return UsageEvent(**values)


def instant(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


# COPY text format: these characters are escaped in a field (NUL is removed before).
_NEEDS_ESCAPE = re.compile(r"[\\\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_STRING_FIELDS = frozenset(
    i for i, name in enumerate(COLUMNS)
    if name in ("request_id", "upstream_request_id", "endpoint", "model", "error_type",
                "service_tier")
)  # fmt: skip


_LINE = "\t".join(["%s"] * len(COLUMNS))
_NULL = "\\N"
_BOOL = ("f", "t")


def _copy_line(r: tuple) -> str:
    """A row as a line of COPY's text format."""
    line = _LINE % (
        r[0], r[1], r[2], r[3], _NULL if r[4] is None else r[4],
        _NULL if r[5] is None else r[5], r[6], r[7], _BOOL[r[8]], r[9], r[10], r[11], r[12],
        r[13], r[14], r[15], r[16], r[17], r[18], r[19], r[20], r[21], _BOOL[r[22]], r[23],
    )  # fmt: skip
    if line.count("\t") == len(COLUMNS) - 1 and not _NEEDS_ESCAPE.search(line):
        return line
    return _LINE % tuple(  # rare: a string holds a tab, newline or backslash
        v.translate(_COPY_ESCAPES) if i in _STRING_FIELDS else
        _NULL if v is None else _BOOL[v] if type(v) is bool else v
        for i, v in enumerate(r)
    )  # fmt: skip


# -- a batch ------------------------------------------------------------------------------------


class Handled(NamedTuple):
    entries: int
    events: int


@dataclass
class Stored:
    """What `store_events` did with a batch."""

    inserted: int = 0
    duplicates: int = 0
    refused: list[tuple[object, str]] = field(default_factory=list)
    spans: list[IngestedSpan] = field(default_factory=list)


def store_events(events: list, *, now: float | None = None, portable: bool | None = None) -> Stored:
    """Store a batch of events (dicts as the gateway publishes them) and their rollups in one
    transaction; see the module docstring. `portable` forces the ORM path that SQLite takes
    (tests compare both on PostgreSQL)."""
    now = time.time() if now is None else now
    result = Stored()
    rows = []
    for event in events:
        try:
            rows.append(clean_event(event, now))
        except Refusal as refusal:
            result.refused.append((event, str(refusal)))
        except (TypeError, ValueError, OverflowError) as exc:
            result.refused.append((event, f"invalid: {exc!r}"[:300]))
    if portable is None:
        portable = connection.vendor != "postgresql"
    _store_rows(rows, result, portable)
    if result.spans:
        _announce(result.spans, Source.GATEWAY)
    return result


def _store_rows(rows: list[tuple], result: Stored, portable: bool) -> None:
    """Store `rows`; on a data error, split the batch until the refused rows are found."""
    if not rows:
        return
    try:
        try:
            spans, inserted = (_store_portable if portable else _store_copy)(rows)
        except IntegrityError as exc:
            if "no partition" not in str(exc):
                raise
            partitions.forget_known()  # dropped by another process since: look again
            spans, inserted = (_store_portable if portable else _store_copy)(rows)
    except (DataError, IntegrityError) as exc:
        if len(rows) == 1:
            logger.error("The database refused usage event %s: %r", rows[0][0], exc)
            result.refused.append((_as_event(rows[0]), f"database: {exc!r}"[:300]))
            return
        half = len(rows) // 2
        _store_rows(rows[:half], result, portable)
        _store_rows(rows[half:], result, portable)
        return
    result.inserted += inserted
    result.duplicates += len(rows) - inserted
    result.spans = _merge_spans(result.spans, spans)


def _as_event(row: tuple) -> dict:
    return dict(zip(COLUMNS, row, strict=True))


def _merge_spans(a: list[IngestedSpan], b: list[IngestedSpan]) -> list[IngestedSpan]:
    merged: dict[int, IngestedSpan] = {s.organization_id: s for s in a}
    for span in b:
        old = merged.get(span.organization_id)
        if old is not None:
            span = IngestedSpan(
                span.organization_id,
                min(old.first, span.first),
                max(old.last, span.last),
                old.events + span.events,
                old.cost_micros + span.cost_micros,
            )
        merged[span.organization_id] = span
    return list(merged.values())


def _announce(spans: list[IngestedSpan], source: str) -> None:
    for receiver, response in usage_ingested.send_robust(
        sender=UsageEvent, spans=spans, source=source
    ):
        if isinstance(response, Exception):
            logger.error("usage_ingested receiver %r failed: %r", receiver, response)


# -- time zones of organizations (daily rollups) -----------------------------------------------

_pg_zones: set[str] | None = None


def _zones(organization_ids) -> dict[int, str]:
    """Each organization's time zone as of now ("UTC" for one deleted, or a zone the database
    does not know)."""
    from orgs.models import Organization

    global _pg_zones
    found = dict(
        Organization.objects.filter(pk__in=list(organization_ids)).values_list("pk", "timezone")
    )
    if connection.vendor == "postgresql":
        if _pg_zones is None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT name FROM pg_timezone_names")
                _pg_zones = {name for (name,) in cursor.fetchall()}
        for pk, zone in found.items():
            if zone not in _pg_zones:
                logger.warning("Time zone %r of organization %s unknown to PostgreSQL", zone, pk)
                found[pk] = "UTC"
    return {pk: found.get(pk, "UTC") for pk in organization_ids}


# -- PostgreSQL: COPY, then one statement --------------------------------------------------------

_STAGE = "usage_event_stage"
_STAGE_SQL = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (
  request_id text, upstream_request_id text, created_at bigint,
  organization_id bigint, workspace_id bigint, api_key_id bigint, endpoint text, model text,
  stream boolean, status integer, error_type text, input_tokens bigint, output_tokens bigint,
  cache_creation_input_tokens bigint, cache_creation_1h_input_tokens bigint,
  cache_read_input_tokens bigint, web_search_requests bigint, web_fetch_requests bigint,
  code_execution_seconds bigint, service_tier text, cost_micros bigint,
  server_tool_cost_micros bigint, fallback_priced boolean, latency_ms double precision
) ON COMMIT DELETE ROWS
"""


def _bucket_sums(bucket: str, bucket_sql: str, source_sql: str) -> str:
    """The batch's inserted events summed by bucket × organization × workspace × key × model."""
    sums = ", ".join(f"sum({name}) AS {name}" for name in _SUMMED)
    return f"""
SELECT i.organization_id, {bucket_sql} AS {bucket}, coalesce(i.workspace_id, 0) AS workspace_id,
       coalesce(i.api_key_id, 0) AS api_key_id, i.model, %(source)s::text AS source,
       count(*) AS requests, count(*) FILTER (WHERE i.status NOT BETWEEN 200 AND 299) AS errors,
       {sums}, count(*) FILTER (WHERE i.fallback_priced) AS fallback_priced_requests
FROM {source_sql}
GROUP BY 1, 2, 3, 4, 5"""  # noqa: S608 (names, not input)


def _rollup_upsert(table: str, bucket: str, rows_sql: str) -> str:
    """Add summed rows to a rollup, creating its missing rows; buckets in one order (two
    ingesting threads lock them in the same order: no deadlock)."""
    keys = f"organization_id, {bucket}, workspace_id, api_key_id, model, source"
    counters = ", ".join(ROLLUP_COUNTERS)
    added = ", ".join(f"{name} = r.{name} + excluded.{name}" for name in ROLLUP_COUNTERS)
    return f"""
INSERT INTO {table} AS r ({keys}, {counters})
SELECT {keys}, {counters} FROM ({rows_sql}) summed
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT ({keys}) DO UPDATE SET {added}"""  # noqa: S608 (names, not input)


# The months' rows from the days' (a few hundred rows a batch, not its events again).
_MONTHS_OF_DAYS = f"""
SELECT organization_id, date_trunc('month', day)::date AS month, workspace_id, api_key_id, model,
       source, {", ".join(f"sum({name}) AS {name}" for name in ROLLUP_COUNTERS)}
FROM days GROUP BY 1, 2, 3, 4, 5, 6"""  # noqa: S608 (names, not input)


# Microseconds since the epoch → timestamptz, exactly (no float on the way).
_AS_TIMESTAMP = "timestamptz 'epoch' + created_at * interval '1 microsecond'"

_INSERT_SQL = f"""
WITH zones (organization_id, zone) AS (
  SELECT * FROM unnest(%(zone_orgs)s::bigint[], %(zone_names)s::text[])
), inserted AS (
  INSERT INTO {UsageEvent._meta.db_table} ({", ".join(COLUMNS)})
  SELECT {", ".join(_AS_TIMESTAMP if c == "created_at" else c for c in COLUMNS)}
  FROM {_STAGE}
  ON CONFLICT DO NOTHING
  RETURNING *
), hourly AS ({
    _rollup_upsert(
        UsageHourly._meta.db_table,
        "hour",
        _bucket_sums("hour", "date_trunc('hour', i.created_at, 'UTC')", "inserted i"),
    )
}), days AS ({
    _bucket_sums(
        "day",
        "(i.created_at AT TIME ZONE coalesce(z.zone, 'UTC'))::date",
        "inserted i LEFT JOIN zones z ON z.organization_id = i.organization_id",
    )
}), daily AS ({_rollup_upsert(UsageDaily._meta.db_table, "day", "SELECT * FROM days")}
), monthly AS ({_rollup_upsert(UsageMonthly._meta.db_table, "month", _MONTHS_OF_DAYS)})
SELECT organization_id, min(created_at), max(created_at), count(*), sum(cost_micros)
FROM inserted GROUP BY organization_id
"""  # noqa: S608 (names, not input)


_COPY_SQL = f"COPY {_STAGE} ({', '.join(COLUMNS)}) FROM STDIN"


def _store_copy(rows: list[tuple]) -> tuple[list[IngestedSpan], int]:
    data = "\n".join([_copy_line(row) for row in rows]) + "\n"
    first, last = min(r[2] for r in rows), max(r[2] for r in rows)
    months = {partitions.month_start(instant(t)) for t in (first, last)}
    if partitions.add_months(min(months), 1) < max(months):  # a batch over several months
        months = {partitions.month_start(instant(r[2])) for r in rows}
    partitions.ensure_partitions(months)
    zones = _zones({row[3] for row in rows})
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_STAGE_SQL)
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        # wrap_database_errors: psycopg's errors raised as Django's
        with connection.wrap_database_errors, raw.copy(_COPY_SQL) as copy:
            copy.write(data)
        cursor.execute(
            _INSERT_SQL,
            {
                "zone_orgs": list(zones),
                "zone_names": list(zones.values()),
                "source": Source.GATEWAY.value,
            },
        )
        found = cursor.fetchall()
    spans = [
        IngestedSpan(org, first, last, n, int(cost or 0)) for org, first, last, n, cost in found
    ]
    return spans, sum(span.events for span in spans)


# -- the portable path (SQLite): the ORM --------------------------------------------------------


def _store_portable(rows: list[tuple]) -> tuple[list[IngestedSpan], int]:
    events = {}
    for row in rows:  # the first of a request id within the batch wins, as ON CONFLICT does
        key = (row[0], instant(row[2]))
        if key not in events:
            values = dict(zip(COLUMNS, row, strict=True))
            values["created_at"] = key[1]
            events[key] = UsageEvent(**values)
    zones = _zones({row[3] for row in rows})
    with transaction.atomic():
        existing = set(
            UsageEvent.objects.filter(request_id__in={k[0] for k in events}).values_list(
                "request_id", "created_at"
            )
        )
        new = [event for key, event in events.items() if key not in existing]
        UsageEvent.objects.bulk_create(new, batch_size=500)
        hourly: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(ROLLUP_COUNTERS, 0))
        daily: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(ROLLUP_COUNTERS, 0))
        monthly: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(ROLLUP_COUNTERS, 0))
        spans: dict[int, list] = {}
        for event in new:
            where = (event.organization_id, event.workspace_id or 0, event.api_key_id or 0,
                     event.model)  # fmt: skip
            hour = event.created_at.replace(minute=0, second=0, microsecond=0)
            zone = zoneinfo.ZoneInfo(zones[event.organization_id])
            day = event.created_at.astimezone(zone).date()
            buckets = (hourly[(*where, hour)], daily[(*where, day)],
                       monthly[(*where, day.replace(day=1))])  # fmt: skip
            for totals in buckets:
                totals["requests"] += 1
                totals["errors"] += not 200 <= event.status <= 299
                totals["fallback_priced_requests"] += event.fallback_priced
                for name in _SUMMED:
                    totals[name] += getattr(event, name)
            span = spans.setdefault(event.organization_id, [event.created_at] * 2 + [0, 0])
            span[0], span[1] = min(span[0], event.created_at), max(span[1], event.created_at)
            span[2] += 1
            span[3] += event.cost_micros
        _add_to_rollups(UsageHourly, "hour", hourly, Source.GATEWAY)
        _add_to_rollups(UsageDaily, "day", daily, Source.GATEWAY)
        _add_to_rollups(UsageMonthly, "month", monthly, Source.GATEWAY)
    return [IngestedSpan(org, *values) for org, values in spans.items()], len(new)


def _add_to_rollups(model, bucket: str, totals: dict[tuple, dict], source: str) -> None:
    """Add `totals` {(organization, workspace, key, model, bucket): counters} to the rollup rows:
    the rows that exist (found in one query) by F() updates, the others in one bulk insert.
    Callers hold the database's write lock by now (SQLite: the events were inserted first in
    the same transaction), so no other writer creates a row between the lookup and the insert."""
    if not totals:
        return
    orgs = {key[0] for key in totals}
    whens = [key[4] for key in totals]
    existing = {
        (org, workspace, api_key, name, when): pk
        for pk, org, workspace, api_key, name, when in model.objects.filter(
            organization_id__in=orgs, source=source,
            **{f"{bucket}__gte": min(whens), f"{bucket}__lte": max(whens)},
        ).values_list("pk", "organization_id", "workspace_id", "api_key_id", "model", bucket)
    }  # fmt: skip
    new = []
    for key, counters in sorted(totals.items(), key=lambda item: tuple(map(str, item[0]))):
        pk = existing.get(key)
        if pk is not None:
            model.objects.filter(pk=pk).update(
                **{name: F(name) + value for name, value in counters.items()}
            )
            continue
        organization_id, workspace_id, api_key_id, name, when = key
        new.append(
            model(
                organization_id=organization_id, workspace_id=workspace_id,
                api_key_id=api_key_id, model=name, source=source, **{bucket: when}, **counters,
            )
        )  # fmt: skip
    model.objects.bulk_create(new, batch_size=500)


# -- the stream ---------------------------------------------------------------------------------


def _decode(entries) -> tuple[list, list, list[bytes]]:
    """Stream entries → (ids, parsed events, unreadable payloads). An entry holds one event
    (field `e`) or a publisher's batch of them as JSON lines (field `b`); a batch is parsed as
    one JSON array, and line by line only if that fails."""
    ids, events, unreadable = [], [], []
    loads = orjson.loads
    for entry_id, fields in entries:
        ids.append(entry_id)
        if not fields:  # deleted from the stream since (already stored): just acknowledge
            continue
        batch = fields.get(BATCH_FIELD)
        if batch is not None:
            try:  # orjson never writes a raw newline inside a value: lines are events
                events.extend(loads(b"[" + batch.replace(b"\n", b",") + b"]"))
                continue
            except orjson.JSONDecodeError:
                lines = batch.split(b"\n")
        else:
            lines = [fields.get(FIELD, b"")]
        for line in lines:
            try:
                events.append(loads(line))
            except orjson.JSONDecodeError:
                unreadable.append(line)
    return ids, events, unreadable


def _read(client, consumer: str, count: int, block_ms: int | None, own_pending: bool):
    stream = stream_key()
    response = client.xreadgroup(
        GROUP, consumer, {stream: "0" if own_pending else ">"}, count=count,
        block=None if own_pending else block_ms,
    )  # fmt: skip
    return response[0][1] if response else []


# Events per stream entry, as recently seen (a moving average): entries are read by the number
# that makes about `count` events (a publisher's entry holds up to FLUSH_BATCH events).
_events_per_entry = float(FLUSH_BATCH)


def ingest_batch(
    *,
    consumer: str,
    client=None,
    count: int = BATCH,
    block_ms: int | None = None,
    own_pending: bool = False,
) -> int:
    """Read about `count` events' worth of entries (new ones, or with `own_pending` this
    consumer's unacknowledged ones), store them, then acknowledge and delete the entries.
    Returns how many entries and events it handled (stored, duplicate or refused)."""
    global _events_per_entry
    client = client or hotpath.client()
    client.set(heartbeat_key(consumer), 1, px=int(HEARTBEAT_TTL * 1000))
    entries_wanted = max(1, int(count / _events_per_entry))
    try:
        entries = _read(client, consumer, entries_wanted, block_ms, own_pending)
    except redis.ResponseError as exc:
        # NOGROUP: a new, flushed or restarted Redis; UNBLOCKED: the stream was deleted (a
        # FLUSHDB) while we waited on it. Either way: make the group again and read.
        if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
            raise
        ensure_group(client)
        entries = _read(client, consumer, entries_wanted, block_ms, own_pending)
    if not entries:
        return Handled(0, 0)
    ids, events, unreadable = _decode(entries)
    seen = (len(events) + len(unreadable)) / len(ids)
    _events_per_entry = max(1.0, 0.7 * _events_per_entry + 0.3 * seen)
    stored = store_events(events) if events else Stored()
    pipe = client.pipeline(transaction=False)
    for event, reason in stored.refused:  # kept for an operator: never dropped silently
        logger.error("Usage event refused (%s): %.200r", reason, event)
        pipe.xadd(dead_letter_key(), {FIELD: _dump(event), b"reason": reason})
    for payload in unreadable:
        logger.error("Unreadable usage event: %.200r", payload)
        pipe.xadd(dead_letter_key(), {FIELD: payload, b"reason": "unreadable"})
    if stored.inserted:
        pipe.hincrby(stats_key(), "stored", stored.inserted)
    if stored.duplicates:
        pipe.hincrby(stats_key(), "duplicates", stored.duplicates)
    if stored.refused or unreadable:
        pipe.hincrby(stats_key(), "refused", len(stored.refused) + len(unreadable))
    pipe.xack(stream_key(), GROUP, *ids)
    pipe.xdel(stream_key(), *ids)
    pipe.execute()
    return Handled(len(ids), len(events) + len(unreadable))


def _dump(event) -> bytes:
    try:
        return orjson.dumps(event)
    except TypeError:
        return orjson.dumps(event, default=str)


def drain(*, consumer: str, client=None) -> int:
    """Ingest until the stream has nothing new (this consumer's pending entries first).
    Returns the number of events handled."""
    client = client or hotpath.client()
    total = 0
    for own_pending in (True, False):
        while True:
            handled = ingest_batch(consumer=consumer, client=client, own_pending=own_pending)
            if not handled.entries:
                break
            total += handled.events
    return total


# -- dead consumers ----------------------------------------------------------------------------

# Remove a consumer from the group only if nothing is pending for it (atomically: an entry
# claimed by it meanwhile is never dropped). KEYS[1] stream; ARGV[1] group, ARGV[2] consumer.
_DELETE_IF_IDLE = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pending == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""


def _name(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def reclaim_dead(consumer: str, client=None) -> int:
    """Claim the pending entries of group members without a heartbeat, then remove those
    members. Returns the number of entries claimed (now pending for `consumer`)."""
    client = client or hotpath.client()
    stream = stream_key()
    try:
        members = client.xinfo_consumers(stream, GROUP)
    except redis.ResponseError:
        return 0  # no stream or group (yet)
    others = [_name(m["name"]) for m in members if _name(m["name"]) != consumer]
    if not others:
        return 0
    pipe = client.pipeline(transaction=False)
    for name in others:
        pipe.exists(heartbeat_key(name))
    alive = dict(zip(others, pipe.execute(), strict=True))
    claimed = 0
    for member in members:
        name = _name(member["name"])
        if name == consumer or alive.get(name):
            continue
        while member["pending"]:
            pending = client.xpending_range(
                stream, GROUP, min="-", max="+", count=1000, consumername=name
            )
            if not pending:
                break
            ids = [p["message_id"] for p in pending]
            got = client.xclaim(stream, GROUP, consumer, CLAIM_MIN_IDLE_MS, ids, justid=True)
            claimed += len(got)
            if len(got) < len(ids):
                break  # someone else claimed them, or they are not idle yet: next round
        if client.eval(_DELETE_IF_IDLE, 1, stream, GROUP, name) != -1:
            logger.info("Removed dead usage consumer %s from the group", name)
    if claimed:
        logger.warning("Claimed %d usage entries left pending by dead consumers", claimed)
    return claimed


# -- the loop -----------------------------------------------------------------------------------


def consumer_name(prefix: str = "") -> str:
    host = socket.gethostname()[:40]
    return f"{prefix}{host}-{os.getpid()}-{random.getrandbits(24):06x}"


class Consumer:
    """The ingestion loop: runs until `stop` is set, whatever Redis and the database do."""

    def __init__(
        self, name: str | None = None, *, block_ms: int = BLOCK_MS, count: int | None = None
    ) -> None:
        from django.conf import settings

        self.name = name or consumer_name()
        self.block_ms = block_ms
        self.count = count or settings.USAGE_INGEST_BATCH
        self.handled = 0
        self.faults = 0

    def run(self, stop: threading.Event) -> None:
        logger.info("Usage consumer %s started", self.name)
        beating = threading.Thread(
            target=self._heartbeat, args=(stop,), name="usage-heartbeat", daemon=True
        )
        beating.start()
        backoff = 0.0
        recover = True  # read our own pending entries first (after a start or a fault)
        next_claim = 0.0
        try:
            while not stop.is_set():
                try:
                    client = hotpath.client()
                    if recover:
                        ensure_group(client)
                        if ingest_batch(
                            consumer=self.name, client=client, own_pending=True
                        ).entries:
                            continue
                        recover = False
                    if time.monotonic() >= next_claim:
                        next_claim = time.monotonic() + CLAIM_EVERY
                        if reclaim_dead(self.name, client):
                            recover = True
                            continue
                    self.handled += ingest_batch(
                        consumer=self.name, client=client, count=self.count, block_ms=self.block_ms
                    ).events
                    backoff = 0.0
                except Exception as exc:
                    self.faults += 1
                    recover = True
                    backoff = min(MAX_BACKOFF, backoff * 2 or 0.1)
                    if isinstance(exc, redis.RedisError | OSError):
                        logger.warning("Usage consumer %s: Redis fault (%s: %s); retrying in %.1fs",
                                       self.name, type(exc).__name__, exc, backoff)  # fmt: skip
                    elif isinstance(exc, DatabaseError):
                        logger.warning(
                            "Usage consumer %s: database fault (%s: %s); retrying in %.1fs",
                            self.name, type(exc).__name__, exc, backoff,
                        )  # fmt: skip
                        connection.close()  # a broken connection is not reused
                    else:
                        logger.exception("Usage consumer %s failed; retrying", self.name)
                    stop.wait(backoff * random.uniform(0.8, 1.2))
                finally:
                    close_old_connections()  # this thread gets no request signals
        finally:
            connection.close()  # this thread's own connection
            logger.info("Usage consumer %s stopped", self.name)

    def _heartbeat(self, stop: threading.Event) -> None:
        key, last = heartbeat_key(self.name), last_heartbeat_key()
        while not stop.wait(HEARTBEAT_EVERY):
            try:
                pipe = hotpath.client().pipeline(transaction=False)
                pipe.set(key, 1, px=int(HEARTBEAT_TTL * 1000))
                pipe.set(last, repr(time.time()), ex=86400)
                pipe.execute()
            except Exception as exc:  # Redis away: the loop notices and backs off too
                logger.debug("Usage consumer heartbeat failed: %r", exc)
        try:
            hotpath.client().delete(key)
        except Exception as exc:
            logger.debug("Usage consumer heartbeat not removed: %r", exc)


_drain_thread: threading.Thread | None = None


def start_background_drain() -> None:
    """`make run`: no Celery worker, so a daemon thread of each web process runs the loop."""
    global _drain_thread
    if _drain_thread is not None and _drain_thread.is_alive():
        return
    consumer = Consumer(consumer_name("web-"))
    _drain_thread = threading.Thread(
        target=consumer.run, args=(threading.Event(),), name="usage-drain", daemon=True
    )
    _drain_thread.start()
