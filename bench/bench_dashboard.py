"""The usage dashboard's server time for every filter, with 10 million requests over 13 months and
50 keys, beside references measured in the same run (target: <= 150 ms a page).

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/bench_dashboard.py

What is generated (in a database of its own, created, migrated and dropped; BENCH_KEEP_DATA=1
keeps it for the next run with BENCH_KEEP_DATA=1, see bench/_data.py):
- the organization measured: 50 API keys in 5 workspaces, 2 models per key, every UTC hour of
  13 months: hourly rollups holding 10 million requests in all, and the daily rollups made from
  them (organization-local days, Europe/Paris) and the monthly rollups made from those — the
  dashboard, the chart, the breakdown and the day/hour CSV read these; plus a tenth as much
  "imported" usage;
- raw events only for the last 31 days, at the density of 10 million over 13 months (~790,000),
  2.8 % of them failed (three error types, bench/_data.py), and only the failed ones (~260,000)
  for the 12 months before: the largest requests read raw events of the period alone, so older
  months do not change a 7- or 30-day page, while the failed requests and their error types of
  a 13-month period count as many failures as real traffic would have. The rollups' `errors`
  are 2.8 % of their requests too (rounded at random, not down to 0).

Each figure is the median of REPEAT requests through Django's test client (middleware, the
role check, the queries, the template), after one warm-up request.
References: the same 30-day totals summed from raw events (what the rollups save), and the
organization's home page (a page that reads no usage but the month's total).
"""

import os
import statistics
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
from _data import KEYS, MODELS, WORKSPACES  # noqa: E402
from django.db import connection  # noqa: E402

REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
TARGET_MS = 150
EVENTS_TOTAL = 10_000_000
ZONE = "Europe/Paris"

COUNTERS = (
    "requests", "errors", "input_tokens", "output_tokens", "cache_creation_input_tokens",
    "cache_creation_1h_input_tokens", "cache_read_input_tokens", "web_search_requests",
    "web_fetch_requests", "code_execution_seconds", "server_tool_cost_micros", "cost_micros",
    "fallback_priced_requests",
)  # fmt: skip


def hourly_sql(first: datetime, last: datetime, hours: int) -> str:
    """Every hour × key × two models of the key: requests averaging 10M over the whole span."""
    per_row = EVENTS_TOTAL / (hours * KEYS * 2)
    spread = max(1, int(per_row))  # requests = base + (0 .. 2*spread): mean ≈ per_row
    base = max(0, round(per_row) - spread)
    return f"""
INSERT INTO usage_usagehourly (organization_id, hour, workspace_id, api_key_id, model, source,
                               {", ".join(COUNTERS)})
SELECT %(org)s, h, (%(ws)s::bigint[])[1 + (k - 1) %% {WORKSPACES}], (%(keys)s::bigint[])[k],
       (%(models)s::text[])[1 + (k + m) %% {len(MODELS)}], %(source)s,
       r, e.errors, r * 1800, r * 350, r * 100, 0, r * 900, 0, 0, 0, 0,
       r * (1800 * 3 + 350 * 15 + 100 * 4 + 900 / 3), 0
FROM generate_series(%(first)s::timestamptz, %(last)s::timestamptz, interval '1 hour') h
CROSS JOIN generate_series(1, {KEYS}) k
CROSS JOIN generate_series(0, 1) m
CROSS JOIN LATERAL (
  SELECT (({base} + (hashint4(k * 100003 + m * 7 + extract(epoch FROM h)::int)::bigint & 2147483647)
           %% ({2 * spread} + 1)) * %(scale)s)::bigint AS r
) n
-- 2.8 %% of the requests failed, as in the raw events (_data.FAILURES), rounded up or down at
-- random so that small rows do not all round to 0.
CROSS JOIN LATERAL (
  SELECT (n.r * 28 + (hashint4(k * 7919 + m + extract(epoch FROM h)::int / 3600)::bigint
                      & 2147483647) %% 1000) / 1000 AS errors
) e
WHERE n.r > 0
"""  # noqa: S608 (numbers, not input)


DAILY_SQL = f"""
INSERT INTO usage_usagedaily (organization_id, day, workspace_id, api_key_id, model, source,
                              {", ".join(COUNTERS)})
SELECT organization_id, (hour AT TIME ZONE %(zone)s)::date, workspace_id, api_key_id, model,
       source, {", ".join(f"sum({c})" for c in COUNTERS)}
FROM usage_usagehourly WHERE organization_id = %(org)s
GROUP BY 1, 2, 3, 4, 5, 6
"""  # noqa: S608

MONTHLY_SQL = f"""
INSERT INTO usage_usagemonthly (organization_id, month, workspace_id, api_key_id, model, source,
                                {", ".join(COUNTERS)})
SELECT organization_id, date_trunc('month', day)::date, workspace_id, api_key_id, model, source,
       {", ".join(f"sum({c})" for c in COUNTERS)}
FROM usage_usagedaily WHERE organization_id = %(org)s
GROUP BY 1, 2, 3, 4, 5, 6
"""  # noqa: S608

CPU: dict[str, float] = {}


def timed(client, url: str, params: dict, headers: dict | None = None, name: str = "") -> float:
    """Median wall time (ms) of the request; the median CPU time this process spent on it
    (Django: the view, the ORM, the template) goes to CPU[name]."""
    client.get(url, params, headers=headers or {})  # warm-up
    samples, cpu = [], []
    for _ in range(REPEAT):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(url, params, headers=headers or {})
        samples.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        assert response.status_code == 200, (response.status_code, params)
        assert b"not valid" not in response.content, params
    CPU[name] = statistics.median(cpu)
    return statistics.median(samples)


def setup_data():
    from django.contrib.auth import get_user_model

    from members.models import Role

    users = get_user_model().objects
    admin = users.create_user(email="admin@bench.test", password="x")
    member = users.create_user(email="dev@bench.test", password="x")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = now - timedelta(days=395)
    hours = int((now - first).total_seconds() // 3600) + 1
    org, params = _data.organization_with_keys(
        name="Bench 0", slug="bench-0", zone=ZONE,
        members=[(admin, Role.ADMIN), (member, Role.MEMBER)],
        key_owner=lambda k: member if k < 5 else admin,
    )  # fmt: skip
    params = {**params, "first": first, "last": now}
    with connection.cursor() as cursor:
        cursor.execute(hourly_sql(first, now, hours), {**params, "source": "gateway",
                                                        "scale": 1})  # fmt: skip
        # Imported usage: a tenth as many requests, in the same keys' rows (a Member never
        # sees it; Admins do).
        cursor.execute(hourly_sql(first, now, hours), {**params, "source": "imported",
                                                        "scale": 0.1})  # fmt: skip
        cursor.execute(DAILY_SQL, {"org": org.pk, "zone": ZONE})
        cursor.execute(MONTHLY_SQL, {"org": org.pk})
    # Raw events of the measured organization: the last 31 days at the 13-month density.
    _data.insert_events(params, now - timedelta(days=31), now, round(EVENTS_TOTAL * 31 / 395))
    # ... and the failed ones alone of the 12 months before (2.8 %, ~260,000): what the failed
    # requests and their error types read for a 13-month period.
    _data.insert_failed_events(
        params, first, now - timedelta(days=31), round(EVENTS_TOTAL * (395 - 31) / 395)
    )
    # VACUUM as autovacuum would soon after the inserts: index-only scans (the error types,
    # decision 0012) skip the heap only for pages marked all-visible.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def main() -> None:
    _data.generate_then_run("dashboard", setup_data, run)


def run(generated: float | None) -> None:
    from django.contrib.auth import get_user_model
    from django.db.models import Sum
    from django.test import Client

    from orgs.models import Organization
    from usage.models import UsageDaily, UsageEvent, UsageHourly, UsageMonthly

    org = Organization.objects.get(slug="bench-0")
    admin = get_user_model().objects.get(email="admin@bench.test")
    member = get_user_model().objects.get(email="dev@bench.test")
    requests = UsageHourly.objects.filter(organization_id=org.pk, source="gateway").aggregate(
        s=Sum("requests")
    )["s"]
    print(
        f"dashboard.data {requests:,} gateway requests over 13 months in "
        f"{UsageHourly.objects.count():,} hourly, {UsageDaily.objects.count():,} daily and "
        f"{UsageMonthly.objects.count():,} monthly rollup rows (50 keys, + imported usage); "
        f"{UsageEvent.objects.count():,} raw events (last 31 days of one organization); "
        + (f"generated in {generated:.0f} s" if generated is not None else "reused (kept)")
    )
    client = Client()
    client.force_login(admin)
    url = f"/o/{org.slug}/usage/"
    today = datetime.now(org.tzinfo).date()
    key = org.api_keys.order_by("pk")[7]
    workspace = org.workspaces.order_by("pk")[2]
    filters = {
        "last 7 days": {},
        "last 30 days": {"period": "30d"},
        "this month": {"period": "month"},
        "last month": {"period": "last_month"},
        "custom 2 days (by hour)": {
            "start": str(today - timedelta(days=1)),
            "end": str(today),
        },
        "custom 13 months": {"start": str(today - timedelta(days=394)), "end": str(today)},
        "30 days, one model": {"period": "30d", "model": "claude-haiku-4-5-20251001"},
        "30 days, one key": {"period": "30d", "key": key.pk},
        "30 days, one workspace": {"period": "30d", "workspace": workspace.pk},
        "30 days, imported": {"period": "30d", "source": "imported"},
        "30 days, by tokens": {"period": "30d", "metric": "tokens", "largest": "tokens"},
    }
    if os.environ.get("BENCH_PROFILE"):
        from django.db import reset_queries
        from django.test.utils import CaptureQueriesContext

        for profiled in ("last 30 days", "custom 13 months"):
            client.get(url, filters[profiled])
            with CaptureQueriesContext(connection) as queries:
                client.get(url, filters[profiled])
            print(f"profile[{profiled}] {len(queries.captured_queries)} queries")
            for q in sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:8]:
                print(f"  {float(q['time']) * 1000:7.1f} ms  {q['sql'][:160]}")
            reset_queries()
    results = {}
    for name, params in filters.items():
        results[name] = timed(client, url, params, name=name)
    breakdown = {}
    for group in ("key", "model", "workspace"):
        breakdown[group] = timed(
            client, url, {"period": "30d", "group": group},
            headers={"HX-Request": "true", "HX-Target": "table-region"}, name=group,
        )  # fmt: skip
    member_client = Client()
    member_client.force_login(member)
    member_30 = timed(member_client, url, {"period": "30d"}, name="member")

    # References, same run: the 30-day totals summed from raw events; the organization's home.
    since = datetime.combine(today - timedelta(days=29), datetime.min.time(), tzinfo=org.tzinfo)
    raw = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        UsageEvent.objects.filter(organization_id=org.pk, created_at__gte=since).aggregate(
            s=Sum("cost_micros"), i=Sum("input_tokens"), o=Sum("output_tokens")
        )
        raw.append((time.perf_counter() - t) * 1000)
    home = timed(client, f"/o/{org.slug}/", {}, name="home")
    worst = max([*results.values(), *breakdown.values(), member_30])
    for name, ms in results.items():
        print(f"dashboard.page[{name}] {ms:.0f} ms (Django CPU {CPU[name]:.0f} ms)")
    for group, ms in breakdown.items():
        print(
            f"dashboard.breakdown[by {group}, 30 days, htmx] {ms:.0f} ms "
            f"(Django CPU {CPU[group]:.0f} ms)"
        )
    print(
        f"dashboard.page[member, own 5 keys, 30 days] {member_30:.0f} ms "
        f"(Django CPU {CPU['member']:.0f} ms)"
    )
    print(
        f"dashboard.worst {worst:.0f} ms (target <= {TARGET_MS} ms; median of {REPEAT}) | "
        f"reference, same run: 30-day totals summed from raw events "
        f"{statistics.median(raw):.0f} ms (one query, no page); organization home page "
        f"{home:.0f} ms (Django CPU {CPU['home']:.0f} ms); load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
