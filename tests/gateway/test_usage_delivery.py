"""Usage events reach the database exactly once: through the Redis stream when Redis is up,
through the disk spool while it is down, and without duplicates when a batch is delivered twice.

The outage test runs its own redis-server on a free port (with an append-only file, as production
Redis should), stops it in the middle of a burst and starts it again. The shared Redis on 6379 is
never touched."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from io import StringIO
from pathlib import Path

import pytest
import redis

from usage.ingest import drain, ingest_batch, store_events
from usage.models import UsageEvent
from usage.stream import UsagePublisher, publisher, stream_key

from .conftest import MODEL, events_for, usage_event
from .servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)


class RedisProcess:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()  # SIGTERM: Redis shuts down cleanly, the AOF is complete
        self.process.wait(10)


@pytest.fixture
def own_redis(tmp_path, settings):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is required")
    server = RedisProcess(tmp_path)
    server.start()
    settings.REDIS_URL = server.url
    yield server
    if server.process and server.process.poll() is None:
        server.stop()


def test_redis_stopped_during_a_burst_loses_and_duplicates_nothing(gw, own_redis):
    total = 120
    done = []
    statuses = []

    def burst() -> None:
        with gw.client() as client:
            for i in range(total):
                message = client.messages.with_raw_response.create(
                    model=MODEL, max_tokens=8, messages=[{"role": "user", "content": f"n{i}"}]
                )
                statuses.append(message.status_code)
                done.append(i)

    spooled_before = publisher().spooled
    thread = threading.Thread(target=burst)
    thread.start()
    while len(done) < 30:
        time.sleep(0.01)
    own_redis.stop()
    while len(done) < 80:
        time.sleep(0.01)
    own_redis.start()
    thread.join(60)
    assert statuses == [200] * total
    assert publisher().spooled > spooled_before, "the outage did not exercise the spool"
    events = events_for(gw.org.pk, total, timeout=20)
    assert len(events) == total
    assert len({e.request_id for e in events}) == total
    assert not list(Path(own_redis.directory).glob("spool/*.jsonl"))


def test_spool_is_replayed_when_redis_returns(settings, tmp_path, world):
    settings.USAGE_SPOOL_DIR = str(tmp_path / "spool")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    local = UsagePublisher()
    local._spooled = False
    events = [usage_event(world.org.pk, i) for i in range(10)]
    counter = f"{settings.GATEWAY_REDIS_NAMESPACE}spend-test"
    lost = f"{settings.GATEWAY_REDIS_NAMESPACE}spend-lost"
    for i, event in enumerate(events):
        local._queue.append((event, [(counter if i < 5 else lost, -10, "e1")]))
    local.flush()
    assert local.spooled == 10
    assert len((tmp_path / "spool").glob("*.jsonl").__next__().read_bytes().splitlines()) == 10
    settings.REDIS_URL = events_redis_url()
    from core import hotpath

    hotpath.client().hset(counter, mapping={"total": 1000, "epoch": "e1"})
    local._down_until = 0
    local.flush()
    assert not list((tmp_path / "spool").glob("*.jsonl"))
    drain(consumer="tests")
    assert UsageEvent.objects.filter(organization_id=world.org.pk).count() == 10
    # Counter adjustments (spend settlements) waited in memory and were applied once, to the
    # counter that exists; a counter Redis no longer has is not recreated from deltas.
    assert int(hotpath.client().hget(counter, "total")) == 950
    assert not hotpath.client().exists(lost)


def test_a_batch_delivered_twice_is_stored_once(world):
    events = [usage_event(world.org.pk, i) for i in range(3)]
    store_events(events)
    store_events([*events, usage_event(world.org.pk, 3)])
    assert UsageEvent.objects.filter(organization_id=world.org.pk).count() == 4


def test_entries_are_acknowledged_and_removed_after_ingestion(world):
    from core import hotpath

    client = hotpath.client()
    local = UsagePublisher()
    local._spooled = False
    for i in range(4):
        local.publish(usage_event(world.org.pk, i))
    local.flush()
    assert client.xlen(stream_key()) == 1  # one entry per flush, its events a line each
    assert ingest_batch(consumer="tests") == (1, 4)  # entries, events
    assert client.xlen(stream_key()) == 0
    assert UsageEvent.objects.filter(organization_id=world.org.pk).count() == 4


def events_redis_url() -> str:
    from .conftest import GATEWAY_TEST_REDIS_URL

    return GATEWAY_TEST_REDIS_URL


def test_consume_usage_command_and_celery_task_ingest_the_stream(world):
    from django.core.management import call_command

    from usage.tasks import ingest_usage_events

    local = UsagePublisher()
    local._spooled = False
    for i in range(3):
        local.publish(usage_event(world.org.pk, i))
    local.flush()
    out = StringIO()
    call_command("consume_usage", "--once", stdout=out)
    assert "Ingested 3" in out.getvalue()
    local.publish(usage_event(world.org.pk, 3))
    local.flush()
    assert ingest_usage_events() == 1
    assert UsageEvent.objects.filter(organization_id=world.org.pk).count() == 4
