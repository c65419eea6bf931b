"""Usage ingestion: events per second from the Redis stream into PostgreSQL with dedupe and the
hourly and daily rollups, through the workers' own code path (`usage.ingest.Consumer`, the loop
a Celery worker runs), beside references measured in the same run on the same rows
(design target: >= 60,000 events/s).

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/bench_ingest.py

- ingest: BENCH_EVENTS events (default 200,000) XADDed to the stream first (not timed), then
  one consumer loop stores them all; timed from its start until the last is stored.
- replay: a quarter of them XADDed again (a spool replay, a redelivery): stored nothing, added
  nothing to the rollups (checked), timed the same way.
- references: the same rows as COPY text, COPYed into an unlogged table (the ceiling of moving
  rows into PostgreSQL at all), and COPY + INSERT … ON CONFLICT into the event table with no
  rollup (what the rollups cost).

The events look like traffic: 50 keys in 10 workspaces of 5 organizations (two time zones),
4 models, time-ordered request ids as the gateway makes them, a few hours of timestamps. Works
in a database of its own (created, migrated, dropped) and a Redis namespace of its own.
"""

import os
import random
import re
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

EVENTS = int(os.environ.get("BENCH_EVENTS", "200000"))
BENCH_REDIS_DB = os.environ.get("BENCH_REDIS_DB", "13")
TARGET = 60_000
MODELS = ["claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929", "claude-opus-4-5", "x-new"]


def make_events(organization_ids: list[int], n: int) -> list[bytes]:
    rng = random.Random(7)
    keys = [(organization_ids[k % 5], k % 10 + 1, k + 1) for k in range(50)]
    start = time.time() - 4 * 3600
    out = []
    for i in range(n):
        moment = start + i * (4 * 3600 / n)
        org, workspace, key = keys[rng.randrange(50)]
        model = MODELS[rng.randrange(4)]
        tokens_in, tokens_out = rng.randrange(1, 20_000), rng.randrange(1, 2_000)
        out.append(
            orjson.dumps(
                {
                    "request_id": f"req_gw_{int(moment * 1e6):014x}{rng.getrandbits(48):012x}",
                    "upstream_request_id": f"req_{rng.getrandbits(64):016x}",
                    "time": moment,
                    "organization_id": org,
                    "workspace_id": workspace,
                    "api_key_id": key,
                    "endpoint": "messages",
                    "model": model,
                    "stream": i % 3 == 0,
                    "status": 200 if i % 50 else 529,
                    "error_type": "" if i % 50 else "overloaded_error",
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "cache_creation_input_tokens": 0 if i % 7 else 1500,
                    "cache_creation_1h_input_tokens": 0,
                    "cache_read_input_tokens": 0 if i % 5 else 3000,
                    "service_tier": "standard",
                    "cost_micros": tokens_in * 3 + tokens_out * 15,
                    "fallback_priced": model == "x-new",
                    "latency_ms": 350.0 + i % 100,
                }
            )
        )
    return out


def publish(client, payloads: list[bytes]) -> None:
    """As the gateways' publishers write them: entries of up to FLUSH_BATCH events."""
    from usage.stream import UsagePublisher

    for start in range(0, len(payloads), 5000):
        UsagePublisher._xadd(client, payloads[start : start + 5000])


def consume_until(stored_target: int) -> float:
    """Run the workers' loop until the stats say `stored_target` entries were handled."""
    from usage.ingest import Consumer, stats

    def handled() -> int:
        s = stats()
        return s.get("stored", 0) + s.get("duplicates", 0)

    stop = threading.Event()
    threads = [
        threading.Thread(target=Consumer(f"bench-{n}", block_ms=100).run, args=(stop,))
        for n in range(settings.USAGE_INGEST_THREADS)
    ]  # as a Celery worker runs them (usage/worker.py)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    while handled() < stored_target:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join()
    return elapsed


def copy_references(payloads: list[bytes]) -> tuple[float, float]:
    """(rows/s into an unlogged table, rows/s COPY + INSERT ON CONFLICT without rollups)."""
    from usage.ingest import _AS_TIMESTAMP, _STAGE_SQL, COLUMNS, _copy_line, clean_event

    now = time.time()
    rows = [clean_event(orjson.loads(p), now) for p in payloads]
    data = "\n".join(_copy_line(r) for r in rows) + "\n"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE UNLOGGED TABLE bench_copy_ceiling AS "
            "SELECT * FROM usage_usageevent WITH NO DATA"
        )
        cursor.execute("ALTER TABLE bench_copy_ceiling ALTER created_at TYPE bigint USING 0")
        started = time.perf_counter()
        with cursor.cursor.copy(f"COPY bench_copy_ceiling ({', '.join(COLUMNS)}) FROM STDIN") as c:
            c.write(data)
        ceiling = len(rows) / (time.perf_counter() - started)
        cursor.execute("DROP TABLE bench_copy_ceiling")
        cursor.execute("TRUNCATE usage_usageevent")
    # Batches as ingestion makes them, no rollups.
    from usage import partitions
    from usage.ingest import instant

    partitions.ensure_partitions({partitions.month_start(instant(r[2])) for r in rows})
    batch = settings.USAGE_INGEST_BATCH
    chosen = ", ".join(_AS_TIMESTAMP if c == "created_at" else c for c in COLUMNS)
    no_rollup_sql = (
        f"INSERT INTO usage_usageevent ({', '.join(COLUMNS)}) SELECT {chosen} "  # noqa: S608
        "FROM usage_event_stage ON CONFLICT DO NOTHING"
    )
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        chunk = "\n".join(_copy_line(r) for r in rows[i : i + batch]) + "\n"
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(_STAGE_SQL)
            with cursor.cursor.copy(
                f"COPY usage_event_stage ({', '.join(COLUMNS)}) FROM STDIN"
            ) as c:
                c.write(chunk)
            cursor.execute(no_rollup_sql)
            cursor.execute("COMMIT")
    no_rollups = len(rows) / (time.perf_counter() - started)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE usage_usageevent")
    return ceiling, no_rollups


def main() -> None:
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        raise SystemExit("Set DATABASE_URL (PostgreSQL) and REDIS_URL.")
    settings_dict = connection.settings_dict
    original_name = settings_dict["NAME"]
    bench_name = f"bench_ingest_{os.getpid()}"
    settings_dict.setdefault("TEST", {})["NAME"] = bench_name
    namespace = f"bench-ingest{os.getpid()}:"
    settings.GATEWAY_REDIS_NAMESPACE = namespace
    settings.REDIS_URL = re.sub(r"/\d+$", "", settings.REDIS_URL) + "/" + BENCH_REDIS_DB
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    from core import hotpath
    from orgs.models import Organization
    from usage.models import UsageDaily, UsageEvent, UsageHourly, UsageMonthly

    client = hotpath.client()
    try:
        zones = ["UTC", "Europe/Paris", "UTC", "America/New_York", "UTC"]
        orgs = [
            Organization.objects.create(name=f"Bench {i}", slug=f"bench-{i}", timezone=zones[i])
            for i in range(5)
        ]
        payloads = make_events([o.pk for o in orgs], EVENTS)
        ceiling, no_rollups = copy_references(payloads)

        publish(client, payloads)
        elapsed = consume_until(EVENTS)
        rate = EVENTS / elapsed
        stored = UsageEvent.objects.count()
        hourly = sum(UsageHourly.objects.values_list("requests", flat=True))
        daily = sum(UsageDaily.objects.values_list("requests", flat=True))
        monthly = sum(UsageMonthly.objects.values_list("requests", flat=True))
        assert stored == hourly == daily == monthly == EVENTS, (stored, hourly, daily, monthly)

        replayed = payloads[: EVENTS // 4]
        publish(client, replayed)
        replay_elapsed = consume_until(EVENTS + len(replayed))
        assert UsageEvent.objects.count() == EVENTS
        assert sum(UsageHourly.objects.values_list("requests", flat=True)) == EVENTS
        assert sum(UsageMonthly.objects.values_list("requests", flat=True)) == EVENTS

        print(
            f"ingest.stream_to_postgres {rate:,.0f} events/s ({EVENTS:,} events, batches of "
            f"{settings.USAGE_INGEST_BATCH:,}, {settings.USAGE_INGEST_THREADS} consumer threads, "
            f"dedupe + hourly, daily and monthly rollups; target >= "
            f"{TARGET:,}) | reference, same rows: COPY into an unlogged table {ceiling:,.0f} "
            f"rows/s; COPY + INSERT ON CONFLICT, no rollups {no_rollups:,.0f} rows/s"
        )
        print(
            f"ingest.replayed_batch {len(replayed) / replay_elapsed:,.0f} events/s "
            f"({len(replayed):,} redelivered events: 0 stored, rollups unchanged)"
        )
    finally:
        for key in client.scan_iter(match=namespace + "*"):
            client.delete(key)
        connection.close()
        connection.creation.destroy_test_db(original_name, verbosity=0)


if __name__ == "__main__":
    main()
