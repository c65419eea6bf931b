"""The usage CSV of single requests: rows per second and peak memory for 1 million events, through
the dashboard's own URL (`?_export=csv&granularity=event`: the role check, the filters, the
streaming response fed by a server-side cursor), beside references measured in the same run
(targets: >= 100,000 rows/s, peak RSS <= 150 MB).

    DATABASE_URL=postgres://... .venv/bin/python bench/bench_export.py

What is generated (a database of its own, created, migrated and dropped): one organization,
50 keys in 5 workspaces, BENCH_EVENTS (default 1,000,000) raw events spread over the last 20
days, inserted by SQL (generate_series), not through ingestion (bench_ingest measures that).
References: PostgreSQL's own `COPY (SELECT …) TO STDOUT (FORMAT csv)` of the same rows (the
ceiling: no Python at all), and the same rows fetched through a named cursor without writing
any CSV (what reading them costs).
"""

import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

EVENTS = int(os.environ.get("BENCH_EVENTS", "1000000"))
TARGET_RATE = 100_000
TARGET_RSS_MB = 150
MODELS = ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001", "claude-opus-4-1-20250805"]

EVENTS_SQL = """
INSERT INTO usage_usageevent (request_id, upstream_request_id, created_at, organization_id,
  workspace_id, api_key_id, endpoint, model, stream, status, error_type, input_tokens,
  output_tokens, cache_creation_input_tokens, cache_creation_1h_input_tokens,
  cache_read_input_tokens, web_search_requests, web_fetch_requests, code_execution_seconds,
  service_tier, cost_micros, server_tool_cost_micros, fallback_priced, latency_ms)
SELECT 'req_bench_' || i, '', %(since)s::timestamptz + (i * %(step)s) * interval '1 second',
  %(org)s, (%(ws)s::bigint[])[1 + (i %% 50) %% 5], (%(keys)s::bigint[])[1 + i %% 50],
  'messages', (%(models)s::text[])[1 + i %% 3], false,
  CASE WHEN i %% 40 = 0 THEN 429 ELSE 200 END,
  CASE WHEN i %% 40 = 0 THEN 'rate_limit_error' ELSE '' END,
  t, t / 5, 100, 0, 900, 0, 0, 0, 'standard', t * 3 + (t / 5) * 15 + 700, 0, false, 400
FROM generate_series(1, %(n)s) i
CROSS JOIN LATERAL (SELECT 200 + (hashint4(i)::bigint & 2147483647) %% 20000 AS t) x
"""


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def setup_data():
    from django.contrib.auth import get_user_model

    from apikeys.models import ApiKey
    from members.models import Membership, Role
    from orgs.models import Organization, Workspace
    from usage import partitions

    admin = get_user_model().objects.create_user(email="finance@bench.test", password="x")
    org = Organization.objects.create(name="Bench", slug="bench", timezone="Europe/Paris")
    Membership.objects.create(organization=org, user=admin, role=Role.BILLING)
    workspaces = [
        Workspace.objects.create(organization=org, name=f"WS {w}", is_default=w == 0)
        for w in range(5)
    ]
    keys = [
        ApiKey.objects.create(
            organization=org,
            workspace=workspaces[k % 5],
            owner=admin,
            name=f"key {k}",
            key_hash=f"{k:064x}",
            prefix=f"csk_{k:04d}",
            last4=f"{k:04d}",
        )
        for k in range(50)
    ]
    now = datetime.now(UTC)
    since = now - timedelta(days=20)
    months = {partitions.month_start(since + timedelta(days=d)) for d in range(22)}
    partitions.ensure_partitions(months)
    with connection.cursor() as cursor:
        cursor.execute(
            EVENTS_SQL,
            {
                "org": org.pk, "ws": [w.pk for w in workspaces], "keys": [k.pk for k in keys],
                "models": MODELS, "since": since, "step": (now - since).total_seconds() / EVENTS,
                "n": EVENTS,
            },
        )  # fmt: skip
        cursor.execute("ANALYZE usage_usageevent")
    return org, admin, since


def statement_only(org, start, today) -> float:
    """Rows/s of the export's own COPY statement read straight from psycopg (no view, no HTTP
    response): what PostgreSQL's formatting costs, apart from Django's streaming."""
    from members.models import Membership
    from usage.export import copy_statement
    from usage.forms import UsageFilterForm

    membership = Membership.objects.get(organization=org)
    form = UsageFilterForm({"start": str(start), "end": str(today)}, membership=membership)
    assert form.is_valid(), form.errors
    sql, params = copy_statement(form.scope(), "event")
    keys = list(org.api_keys.values_list("pk", flat=True))
    workspaces = list(org.workspaces.values_list("pk", flat=True))
    labels = [keys, ["k"] * len(keys), ["p"] * len(keys), workspaces, ["w"] * len(workspaces)]
    t = time.perf_counter()
    with connection.cursor() as cursor, cursor.cursor.copy(sql, [*params, *labels]) as copy:
        for _chunk in copy:
            pass
    connection.connection.commit()
    return EVENTS / (time.perf_counter() - t)


def explain(org, start, today) -> None:
    """The plan of the export's statement (BENCH_EXPLAIN=1), for docs/decisions/0012."""
    from members.models import Membership
    from usage.export import copy_statement
    from usage.forms import UsageFilterForm

    membership = Membership.objects.get(organization=org)
    form = UsageFilterForm({"start": str(start), "end": str(today)}, membership=membership)
    assert form.is_valid(), form.errors
    sql, params = copy_statement(form.scope(), "event")
    select = sql.removeprefix("COPY (").removesuffix(") TO STDOUT (FORMAT csv)")
    keys = list(org.api_keys.values_list("pk", flat=True))
    workspaces = list(org.workspaces.values_list("pk", flat=True))
    labels = [keys, ["k"] * len(keys), ["p"] * len(keys), workspaces, ["w"] * len(workspaces)]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS OFF) " + select, [*params, *labels])
        for (line,) in cursor.fetchall():
            print("  " + line)


def main() -> None:
    if connection.vendor != "postgresql":
        raise SystemExit("Set DATABASE_URL (PostgreSQL).")
    settings.ALLOWED_HOSTS = ["*"]
    original_name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_export_{os.getpid()}"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        run()
    finally:
        connection.close()
        connection.creation.destroy_test_db(original_name, verbosity=0)


def run() -> None:
    from django.test import Client

    started = time.perf_counter()
    org, user, since = setup_data()
    generated = time.perf_counter() - started
    today = datetime.now(org.tzinfo).date()
    start = since.astimezone(org.tzinfo).date()

    # References first (they use no Python per row, or no CSV): the ceiling and the read.
    select = (
        "SELECT created_at, workspace_id, api_key_id, model, status, input_tokens, "
        "output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_micros "
        "FROM usage_usageevent WHERE organization_id = %s ORDER BY created_at, request_id"
    )
    with connection.cursor() as cursor:
        t = time.perf_counter()
        size = 0
        with cursor.cursor.copy(
            f"COPY ({select.replace('%s', str(org.pk))}) TO STDOUT (FORMAT csv)"
        ) as copy:
            for chunk in copy:
                size += len(chunk)
        copy_rate = EVENTS / (time.perf_counter() - t)
    connection.connection.commit()
    t = time.perf_counter()
    fetched = 0
    with connection.connection.cursor(name="bench_read", withhold=True) as named:
        named.itersize = 5000
        named.execute(select, [org.pk])
        for _row in named:
            fetched += 1
    connection.connection.commit()
    read_rate = fetched / (time.perf_counter() - t)
    statement_rate = statement_only(org, start, today)
    rss_before = rss_mb()
    if os.environ.get("BENCH_EXPLAIN"):
        explain(org, start, today)

    client = Client()
    client.force_login(user)
    t = time.perf_counter()
    response = client.get(
        f"/o/{org.slug}/usage/",
        {"_export": "csv", "granularity": "event", "start": str(start), "end": str(today)},
    )
    assert response.status_code == 200 and response.streaming
    rows, size = -1, 0  # the header is not a row
    for chunk in response.streaming_content:
        rows += chunk.count(b"\n")
        size += len(chunk)
    elapsed = time.perf_counter() - t
    assert rows == EVENTS, (rows, EVENTS)
    rate = rows / elapsed
    peak = rss_mb()
    print(
        f"export.csv_single_events {rate:,.0f} rows/s ({rows:,} rows, {size / 1e6:.0f} MB of "
        f"CSV in {elapsed:.1f} s; target >= {TARGET_RATE:,}) | reference, same rows, same run: "
        f"COPY … TO STDOUT (FORMAT csv) {copy_rate:,.0f} rows/s; the export's own COPY "
        f"statement read by psycopg alone {statement_rate:,.0f} rows/s; named-cursor read "
        f"without CSV {read_rate:,.0f} rows/s"
    )
    print(
        f"export.peak_rss {peak:.0f} MB for the whole process (target <= {TARGET_RSS_MB} MB) | "
        f"reference: {rss_before:.0f} MB before the export (Django loaded, references run); "
        f"data generated by SQL in {generated:.0f} s"
    )


if __name__ == "__main__":
    main()
