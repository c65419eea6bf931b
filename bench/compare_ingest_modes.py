"""How a Celery deployment should consume the usage stream, measured for decision 0005:

  loop  the worker bootstep (usage/worker.py): ingestion threads in the worker process, always
        reading (XREADGROUP BLOCK), as production runs it;
  task  a short drain task (`usage.tasks.ingest_usage_events`, one at a time under a Redis lock)
        sent every second, as a beat entry would send it; the worker's loop turned off.

For each: events published the way gateways publish them (an entry of 50 events every 50 ms,
1,000 events/s) for BENCH_SECONDS, the delay from publication to the row being visible in
PostgreSQL (p50, p99, max), then a burst of BENCH_BURST events published at once and the time
to store them all. A real `celery worker` process each time, on a database of its own.

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/compare_ingest_modes.py
"""

import os
import re
import subprocess
import sys
import tempfile
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

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
BURST = int(os.environ.get("BENCH_BURST", "50000"))
QUEUE = f"bench-ingest-{os.getpid()}"


def payload(org: int, n: int) -> bytes:
    return orjson.dumps(
        {"request_id": f"req_bench_{n:09d}", "time": time.time(), "organization_id": org,
         "workspace_id": 1, "api_key_id": 1 + n % 50, "model": "claude-haiku-4-5",
         "status": 200, "input_tokens": 100, "output_tokens": 20, "cost_micros": 200}
    )  # fmt: skip


def count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM usage_usageevent")
        return cursor.fetchone()[0]


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    out = log.open("w")
    proc = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-m", "celery", "-A", "console", "worker", "-Q", QUEUE, "--pool", "solo",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "info"],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while " ready." not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return proc


def run(mode: str, org: int, start_n: int, env: dict) -> tuple[dict, int]:
    from core import hotpath
    from usage.stream import UsagePublisher
    from usage.tasks import ingest_usage_events

    client = hotpath.client()
    env = {**env, "USAGE_INGEST_IN_WORKER": "true" if mode == "loop" else "false"}
    log = Path(tempfile.gettempdir()) / f"bench-ingest-{mode}-{os.getpid()}.log"
    worker = start_worker(env, log)
    stop = threading.Event()

    def beat() -> None:  # what a beat entry every second would do
        while not stop.wait(1.0):
            ingest_usage_events.apply_async(queue=QUEUE)

    if mode == "task":
        threading.Thread(target=beat, daemon=True).start()
    try:
        base = count()
        marks, polls = [], []
        polling = threading.Event()

        def poll() -> None:
            while not polling.is_set():
                polls.append((time.monotonic(), count()))
                time.sleep(0.02)
            connection.close()  # this thread's own connection

        poller = threading.Thread(target=poll)
        poller.start()
        n = start_n
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            UsagePublisher._xadd(client, [payload(org, n + i) for i in range(50)])
            n += 50
            marks.append((time.monotonic(), n - start_n))
            time.sleep(0.05)
        while count() - base < n - start_n:
            time.sleep(0.02)
        polling.set()
        poller.join()
        polls.append((time.monotonic(), count()))
        delays = []
        for published_at, needed in marks:
            seen = next(t for t, c in polls if c - base >= needed)
            delays.append(max(0.0, seen - published_at))
        delays.sort()
        steady = {
            "p50": delays[len(delays) // 2],
            "p99": delays[int(len(delays) * 0.99)],
            "max": delays[-1],
        }
        # The burst.
        before = count()
        burst = [payload(org, n + i) for i in range(BURST)]
        n += BURST
        started = time.monotonic()
        for i in range(0, BURST, 500):
            UsagePublisher._xadd(client, burst[i : i + 500])
        while count() - before < BURST:
            time.sleep(0.02)
        steady["burst_s"] = time.monotonic() - started
        return steady, n
    finally:
        stop.set()
        worker.terminate()
        worker.wait(30)


def main() -> None:
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        raise SystemExit("Set DATABASE_URL (PostgreSQL) and REDIS_URL.")
    settings_dict = connection.settings_dict
    original_name = settings_dict["NAME"]
    name = f"bench_modes_{os.getpid()}"
    settings_dict.setdefault("TEST", {})["NAME"] = name
    namespace = f"bench-modes{os.getpid()}:"
    settings.GATEWAY_REDIS_NAMESPACE = namespace
    redis_url = (
        re.sub(r"/\d+$", "", settings.REDIS_URL) + "/" + os.environ.get("BENCH_REDIS_DB", "13")
    )
    settings.REDIS_URL = settings.CELERY_BROKER_URL = redis_url
    from console.celery import app

    app.conf.broker_url = redis_url
    app.conf.task_always_eager = False
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    env = {
        **os.environ,
        "DATABASE_URL": re.sub(r"/[^/?]+(\?|$)", f"/{name}\\1", os.environ["DATABASE_URL"]),
        "REDIS_URL": redis_url,
        "GATEWAY_REDIS_NAMESPACE": namespace,
        "WEB_RUNS_BACKGROUND_WORK": "false",
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    from core import hotpath
    from orgs.models import Organization

    try:
        org = Organization.objects.create(name="Bench", slug="bench").pk
        n = 0
        for mode in ("loop", "task"):
            result, n = run(mode, org, n, env)
            print(
                f"ingest.mode.{mode} visible after p50 {result['p50'] * 1000:.0f} ms, p99 "
                f"{result['p99'] * 1000:.0f} ms, max {result['max'] * 1000:.0f} ms "
                f"(1,000 events/s); burst of {BURST:,} stored in {result['burst_s']:.1f} s "
                f"({BURST / result['burst_s']:,.0f} events/s)"
            )
    finally:
        client = hotpath.client()
        for key in client.scan_iter(match=namespace + "*"):
            client.delete(key)
        connection.close()
        connection.creation.destroy_test_db(original_name, verbosity=0)


if __name__ == "__main__":
    main()
