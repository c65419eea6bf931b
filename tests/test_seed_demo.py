"""`manage.py seed_demo`: demo keys and 30 days of realistic usage (several models and
workspaces, a weekly rhythm, one spike, errors, cache traffic and web searches), stored through
the real ingestion path, idempotently: on PostgreSQL, and on SQLite as `make run` has it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Sum

from apikeys.models import ApiKey
from console.management.commands.seed_demo import KEYS, SPIKE_KEY
from orgs.models import Organization
from tests.gateway.conftest import seed_prices
from usage.models import UsageDaily, UsageEvent, UsageHourly

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def prices():
    """The migrations' price rows, which an earlier transactional test may have truncated."""
    seed_prices()


ROOT = Path(__file__).resolve().parent.parent


def snapshot(org) -> tuple:
    return (
        sorted(UsageEvent.objects.filter(organization_id=org.pk).values_list(
            "request_id", "cost_micros")),
        sorted(UsageHourly.objects.filter(organization_id=org.pk).values_list(
            "hour", "api_key_id", "model", "requests", "cost_micros")),
        sorted(UsageDaily.objects.filter(organization_id=org.pk).values_list(
            "day", "api_key_id", "model", "requests", "errors", "cost_micros")),
    )  # fmt: skip


def test_seed_demo_makes_a_month_of_realistic_usage_once():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    org = Organization.objects.get(slug="acme-support")
    keys = {k.name: k for k in ApiKey.objects.filter(organization=org)}
    assert set(keys) == {profile.name for _, _, profile in KEYS}
    assert keys["Research agent"].owner.email == "dev@example.com"

    events = UsageEvent.objects.filter(organization_id=org.pk)
    daily = UsageDaily.objects.filter(organization_id=org.pk)
    totals = daily.aggregate(
        requests=Sum("requests"), errors=Sum("errors"), cost=Sum("cost_micros"),
        read=Sum("cache_read_input_tokens"), written=Sum("cache_creation_input_tokens"),
        searches=Sum("web_search_requests"), tools=Sum("server_tool_cost_micros"),
    )  # fmt: skip
    # The rollups hold exactly the events: they came through ingestion.
    assert totals["requests"] == events.count() > 2_000
    assert totals["cost"] == events.aggregate(c=Sum("cost_micros"))["c"] > 0
    assert 0 < totals["errors"] < totals["requests"] * 0.05
    assert totals["read"] > totals["written"] > 0  # mostly cache hits
    assert totals["searches"] > 0 and totals["tools"] == totals["searches"] * 10_000
    assert daily.values("model").distinct().count() >= 3
    assert daily.values("workspace_id").distinct().count() == 3
    days = sorted(daily.values_list("day", flat=True).distinct())
    assert 29 <= len(days) <= 30 and days[-1] - days[0] <= timedelta(days=29)

    # The weekly rhythm: working days busier than weekends (the nightly job aside).
    nightly = keys["Nightly evals"].pk
    by_day: dict = defaultdict(int)
    for day, requests in daily.exclude(api_key_id=nightly).values_list("day", "requests"):
        by_day[day] += requests
    full_days = [d for d in by_day if d != days[-1]]  # today has only begun
    weekday = [by_day[d] for d in full_days if d.weekday() < 5]
    weekend = [by_day[d] for d in full_days if d.weekday() >= 5]
    assert sum(weekday) / len(weekday) > 3 * sum(weekend) / len(weekend)

    # One spike: the research agent's day over 3 × its trailing 7-day average.
    spike_key = keys[SPIKE_KEY].pk
    cost: dict = defaultdict(int)
    for day, micros in daily.filter(api_key_id=spike_key).values_list("day", "cost_micros"):
        cost[day] += micros
    spikes = [
        d for d in cost
        if cost[d] > 3 * sum(cost.get(d - timedelta(days=n), 0) for n in range(1, 8)) / 7
        and d - timedelta(days=7) >= days[0]
    ]  # fmt: skip
    assert len(spikes) == 1

    before = snapshot(org)
    again = StringIO()
    call_command("seed_demo", stdout=again)
    assert "0 requests stored" in again.getvalue()
    assert snapshot(org) == before
    assert ApiKey.objects.filter(organization=org).count() == len(KEYS)


SQLITE_SCRIPT = """
import json, time
import django
django.setup()
from io import StringIO
from django.core.management import call_command
from django.db.models import Sum
call_command("migrate", verbosity=0)
from usage.models import UsageDaily, UsageEvent
runs = []
for _ in range(2):
    started = time.monotonic()
    call_command("seed_demo", stdout=StringIO())
    runs.append(time.monotonic() - started)
print(json.dumps({
    "events": UsageEvent.objects.count(),
    "daily_requests": UsageDaily.objects.aggregate(r=Sum("requests"))["r"],
    "event_cost": UsageEvent.objects.aggregate(c=Sum("cost_micros"))["c"],
    "daily_cost": UsageDaily.objects.aggregate(c=Sum("cost_micros"))["c"],
    "runs": runs,
}))
"""


def test_seed_demo_on_sqlite_as_make_run_has_it(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)
    } | {"DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
         "DJANGO_SETTINGS_MODULE": "console.settings"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", SQLITE_SCRIPT], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["events"] == result["daily_requests"] > 2_000
    assert result["event_cost"] == result["daily_cost"]
    print("seed_demo on SQLite, first and second run (s):", result["runs"])
