"""`make run` keeps SQLite: the same ingestion functions take their portable path there (no
COPY). Run in a process of its own on a fresh SQLite file, migrated from scratch."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, time
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from orgs.models import Organization
from usage.ingest import store_events
from usage.models import UsageDaily, UsageEvent, UsageHourly
org = Organization.objects.create(name="Lite", slug="lite", timezone="Asia/Kolkata")
t = 1767205800.0  # 2025-12-31 18:30 UTC = 2026-01-01 00:00 in Kolkata
batch = [{"request_id": f"r{n}", "time": t + n, "organization_id": org.pk, "api_key_id": 3,
          "model": "m", "status": 200 if n else 500, "input_tokens": 10, "cost_micros": 7}
         for n in range(5)]
first = store_events(batch)
again = store_events(batch + [dict(batch[0], request_id="r9")])
print(json.dumps({
    "first": first.inserted, "again": again.inserted, "events": UsageEvent.objects.count(),
    "hourly": list(UsageHourly.objects.values_list("requests", "errors", "cost_micros")),
    "daily": [(str(d), r) for d, r in UsageDaily.objects.values_list("day", "requests")],
}))
"""


def test_sqlite_ingests_through_the_portable_path_exactly_once(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")
    } | {"DATABASE_URL": f"sqlite:///{tmp_path / 'lite.sqlite3'}",
         "DJANGO_SETTINGS_MODULE": "console.settings"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["first"] == 5 and result["again"] == 1 and result["events"] == 6
    assert result["hourly"] == [[6, 2, 42]]  # r0 and its copy r9 answered 500
    assert result["daily"] == [["2026-01-01", 6]]
