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

import _data  # noqa: E402
from django.db import connection  # noqa: E402

EVENTS = int(os.environ.get("BENCH_EVENTS", "1000000"))
TARGET_RATE = 100_000
TARGET_RSS_MB = 150


def rss_mb() -> float:
    """The process's peak resident set size so far (its high-water mark)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_now_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak_rss() -> bool:
    """Reset the high-water mark to the current RSS (Linux: clear_refs 5), so that the next
    reading is the export's own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def setup_data():
    from django.contrib.auth import get_user_model

    from members.models import Role

    admin = get_user_model().objects.create_user(email="finance@bench.test", password="x")
    _org, params = _data.organization_with_keys(
        name="Bench", slug="bench", zone="Europe/Paris", members=[(admin, Role.BILLING)],
        key_owner=lambda k: admin,
    )  # fmt: skip
    now = datetime.now(UTC)
    _data.insert_events(params, now - timedelta(days=20), now, EVENTS)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE usage_usageevent")


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
    _data.generate_then_run(f"export_{EVENTS}", setup_data, run)


def run(generated: float | None) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from orgs.models import Organization
    from usage.models import UsageEvent

    org = Organization.objects.get(slug="bench")
    user = get_user_model().objects.get(email="finance@bench.test")
    since = UsageEvent.objects.filter(organization_id=org.pk).earliest("created_at").created_at
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
    if os.environ.get("BENCH_EXPLAIN"):
        explain(org, start, today)

    client = Client()
    client.force_login(user)
    # A web process has its URLconf loaded (every view module and what they import) before it
    # serves an export: the first request loads it, so the baseline is taken after one.
    rss_set_up, t = rss_now_mb(), time.perf_counter()
    assert client.get(f"/o/{org.slug}/").status_code == 200
    first_page = time.perf_counter() - t
    rss_before, peak_before = rss_now_mb(), rss_mb()
    reset_peak = reset_peak_rss()
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
    peak_export = rss_mb()
    peak = max(peak_before, peak_export)
    print(
        f"export.csv_single_events {rate:,.0f} rows/s ({rows:,} rows, {size / 1e6:.0f} MB of "
        f"CSV in {elapsed:.1f} s; target >= {TARGET_RATE:,}) | reference, same rows, same run: "
        f"COPY … TO STDOUT (FORMAT csv) {copy_rate:,.0f} rows/s; the export's own COPY "
        f"statement read by psycopg alone {statement_rate:,.0f} rows/s; named-cursor read "
        f"without CSV {read_rate:,.0f} rows/s"
    )
    export_peak = (
        f"{peak_export:.0f} MB while exporting (the high-water mark reset just before)"
        if reset_peak
        else "(the high-water mark cannot be reset here)"
    )
    print(
        f"export.peak_rss {peak:.0f} MB for the whole process, its high-water mark from start to "
        f"the end of the export (target <= {TARGET_RSS_MB} MB) | baseline: {rss_before:.0f} MB "
        f"resident just before the export ({rss_set_up:.0f} MB with Django set up and the "
        f"references run, then the first page, which loads the URLconf, in {first_page:.1f} s; "
        f"high-water mark so far {peak_before:.0f} MB); {export_peak}; "
        + (
            f"data generated by SQL in {generated:.0f} s"
            if generated is not None
            else "data reused (kept)"
        )
    )
    print(f"export.load_average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
