"""Usage ingestion by real `celery worker` processes, as production runs it (worker + beat and
nothing else): the worker's own thread consumes the stream (usage/worker.py). Killed after its
commit and before its acknowledgement, two of them on one stream, Redis restarted under them:
every event is stored once and counted once in the rollups.

The workers run `tests.settings_usage_probe`: the console's settings plus a receiver of
`usage_ingested` that records which process stored what and can SIGKILL its own process right
after a commit (tests/usage_probe.py)."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import pytest
from django.conf import settings

from core import hotpath
from usage.ingest import GROUP
from usage.models import UsageEvent
from usage.stream import UsagePublisher, stream_key

from .usage_helpers import RedisServer, Worker, event, publish, totals, wait_for, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def own_namespace(settings, tmp_path):
    settings.GATEWAY_REDIS_NAMESPACE = f"t{os.getpid()}:{tmp_path.name}:"
    settings.USAGE_SPOOL_DIR = str(tmp_path / "spool")
    yield
    try:
        client = hotpath.client()
        for key in client.scan_iter(match=settings.GATEWAY_REDIS_NAMESPACE + "*"):
            client.delete(key)
    except Exception:  # a test's own Redis, stopped
        pass


@pytest.fixture
def workers(tmp_path):
    started: list[Worker] = []

    def start(name: str, redis_url: str | None = None, may_die: bool = False, **env) -> Worker:
        worker = Worker(
            tmp_path / f"{name}.log", worker_env(redis_url or settings.REDIS_URL, **env)
        )
        started.append(worker)
        return worker.start(may_die=may_die)

    yield start
    for worker in started:
        worker.stop()


def probe_lines(path) -> Counter:
    """pid → events stored, from the probe file."""
    stored: Counter = Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            pid, events = line.split()
            stored[int(pid)] += int(events)
    return stored


def test_a_celery_worker_alone_ingests_the_stream(world, workers, tmp_path):
    worker = workers("w1", USAGE_PROBE_FILE=tmp_path / "probe")
    publish([event(world.org.pk, n) for n in range(50)])
    wait_for(lambda: UsageEvent.objects.count() == 50, "50 events stored by the worker")
    assert probe_lines(tmp_path / "probe") == {worker.process.pid: 50}
    sums = totals(world.org.pk)
    assert sums["events"]["requests"] == sums["hourly"]["requests"] == sums["daily"]["requests"]
    assert sums["daily"]["requests"] == sums["monthly"]["requests"]


def test_a_worker_killed_after_its_insert_and_before_its_ack_loses_and_doubles_nothing(
    world, workers, tmp_path
):
    flag = tmp_path / "killed"
    publish([event(world.org.pk, n) for n in range(200)])
    victim = workers("victim", may_die=True, USAGE_KILL_FLAG=flag, USAGE_INGEST_BATCH=40)
    wait_for(lambda: victim.process.poll() is not None, "the worker's SIGKILL")
    assert victim.process.returncode == -9 and flag.exists()
    committed = UsageEvent.objects.count()
    assert 1 <= committed <= 40  # its first batch: committed, never acknowledged
    client = hotpath.client()
    # Its batch is still pending: committed, never acknowledged. (Its other ingesting thread may
    # have committed and acknowledged a batch of its own before the SIGKILL landed, so the
    # entries pending can be fewer than the events stored.)
    assert client.xpending(stream_key(), GROUP)["pending"] >= 1
    workers("rescuer", USAGE_INGEST_BATCH=40)
    started = time.monotonic()
    wait_for(lambda: UsageEvent.objects.count() == 200, "every event stored", timeout=30)
    wait_for(lambda: client.xpending(stream_key(), GROUP)["pending"] == 0, "nothing pending")
    assert time.monotonic() - started < 10  # the dead worker's batch is claimed in seconds
    members = [m["name"].decode() for m in client.xinfo_consumers(stream_key(), GROUP)]
    assert members and not [m for m in members if f"-{victim.process.pid}-" in m]  # removed
    sums = totals(world.org.pk)
    assert sums["events"] == sums["hourly"] == sums["daily"] == sums["monthly"]
    assert sums["hourly"]["requests"] == 200
    assert sums["hourly"]["cost_micros"] == sum(1000 + n for n in range(200))


def test_two_workers_on_one_stream_store_every_event_once(world, workers, tmp_path):
    probe = tmp_path / "probe"
    first = workers("a", USAGE_PROBE_FILE=probe, USAGE_INGEST_BATCH=50)
    second = workers("b", USAGE_PROBE_FILE=probe, USAGE_INGEST_BATCH=50)
    total = 3000
    for start in range(0, total, 100):
        publish([event(world.org.pk, n) for n in range(start, start + 100)])
        time.sleep(0.01)
    wait_for(lambda: UsageEvent.objects.count() == total, "every event stored", timeout=60)
    stored = probe_lines(probe)
    assert set(stored) == {first.process.pid, second.process.pid}  # both took part
    assert sum(stored.values()) == total  # and no event was counted by both
    sums = totals(world.org.pk)
    assert sums["events"] == sums["hourly"] == sums["daily"] == sums["monthly"]
    assert sums["hourly"]["requests"] == total


def test_a_worker_keeps_ingesting_through_a_redis_restart(world, workers, tmp_path, settings):
    server = RedisServer(tmp_path)
    server.start()
    settings.REDIS_URL = server.url  # the publisher of this test, like a gateway's
    try:
        worker = workers("w", redis_url=server.url)
        publisher = UsagePublisher()
        published = []
        stop = threading.Event()

        def load() -> None:
            n = 0
            while not stop.is_set():
                item = event(world.org.pk, n)
                publisher.publish(item)
                published.append(item["request_id"])
                n += 1
                time.sleep(0.002)

        thread = threading.Thread(target=load)
        thread.start()
        time.sleep(1.5)
        server.shutdown_nosave()
        time.sleep(1.5)  # Redis away: the publisher spools, the worker backs off
        server.start()
        time.sleep(1.5)
        stop.set()
        thread.join()
        publisher.close()
        wait_for(
            lambda: UsageEvent.objects.count() >= len(published), "every event stored", timeout=30
        )
        assert worker.process.poll() is None, "the worker exited:\n" + worker.text()
        assert "Redis fault" in worker.text()
        assert publisher.spooled > 0, "the outage did not exercise the spool"
        stored = list(UsageEvent.objects.values_list("request_id", flat=True))
        assert sorted(stored) == sorted(published)  # every one, none twice
        assert totals(world.org.pk)["hourly"]["requests"] == len(published)
    finally:
        server.stop()
