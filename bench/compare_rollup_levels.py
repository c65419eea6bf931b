"""What the monthly rollups cost ingestion: batches of 10,000 events stored through the COPY path
(`usage.ingest.store_events`), alternately with the statement as it is and with its monthly
upsert left out, timed batch by batch so that the machine's load, which drifts, weighs on both
alike (decision 0005: the whole loop is measured by bench_ingest.py).

    DATABASE_URL=postgres://... .venv/bin/python bench/compare_rollup_levels.py
"""

import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
from bench_ingest import make_events  # noqa: E402

BATCH = 10_000
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "8"))


def main() -> None:
    import _data

    with _data.bench_database("rollup_levels"):
        run()


def run() -> None:
    from orgs.models import Organization
    from usage import ingest

    zones = ["UTC", "Europe/Paris", "UTC", "America/New_York", "UTC"]
    orgs = [
        Organization.objects.create(name=f"Bench {i}", slug=f"bench-{i}", timezone=zones[i])
        for i in range(5)
    ]
    events = [orjson.loads(e) for e in make_events([o.pk for o in orgs], BATCH * ROUNDS * 2)]
    with_months = ingest._INSERT_SQL
    # The same statement without its last CTE (the monthly upsert).
    without = re.sub(r"\), monthly AS \(.*\)\nSELECT organization_id", ")\nSELECT organization_id",
                     with_months, flags=re.S)  # fmt: skip
    assert "usage_usagemonthly" not in without and without != with_months
    store = ingest.store_events
    store(events[:100])  # warm-up: partitions, the staging table
    times = {"with monthly": [], "without": []}
    position = 100
    for n in range(ROUNDS * 2):
        name = ("with monthly", "without")[(n + n // 2) % 2]  # ABBA: drift cancels
        ingest._INSERT_SQL = with_months if name == "with monthly" else without
        batch = events[position : position + BATCH]
        position += BATCH
        started = time.perf_counter()
        stored = store(batch)
        times[name].append(time.perf_counter() - started)
        assert stored.inserted == len(batch)
    ingest._INSERT_SQL = with_months
    for name, seconds in times.items():
        print(
            f"rollup_levels.batch[{name}] median {statistics.median(seconds) * 1000:.0f} ms, "
            f"min {min(seconds) * 1000:.0f} ms a batch of {BATCH:,} "
            f"({BATCH / statistics.median(seconds):,.0f} events/s)"
        )
    ratio = statistics.median(times["with monthly"]) / statistics.median(times["without"])
    print(
        f"rollup_levels.cost of the monthly upsert: x{ratio:.2f} a batch | load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
