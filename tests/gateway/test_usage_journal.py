"""The usage journal: an event is on local disk before the client has its answer, so a gateway
process killed with SIGKILL under load loses no answered request, and its journal is replayed by
the next gateway process without duplicates (usage/stream.py, decision 0007)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from django.db import connection

from core import hotpath
from gateway.services import configure_upstream
from usage.ingest import drain
from usage.models import UsageEvent
from usage.stream import UsagePublisher, journal_dir, stream_key

from .conftest import GATEWAY_TEST_REDIS_URL, MODEL, mint_key, seed_prices, usage_event
from .servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 8


def journal_lines() -> list[bytes]:
    directory = journal_dir()
    return [
        line for path in sorted(directory.glob("journal-*.jsonl"))
        for line in path.read_bytes().splitlines() if line.strip()
    ]  # fmt: skip


def leave_journal(path: Path, events: list[dict]) -> None:
    """A dead process's segment, appearing whole (a sweep may run at any moment)."""
    partial = path.with_suffix(".partial")
    partial.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    os.replace(partial, path)


def test_an_event_is_journaled_when_published_and_the_segment_goes_once_delivered(world):
    local = UsagePublisher()
    local._spooled = False
    local._thread = threading.Thread()  # no flushing thread: the test flushes
    local.publish(usage_event(world.org.pk, 1))
    local.publish(usage_event(world.org.pk, 2))
    # On disk before any flush: a process killed now has lost nothing.
    assert [orjson.loads(line)["request_id"] for line in journal_lines()] == [
        usage_event(world.org.pk, 1)["request_id"],
        usage_event(world.org.pk, 2)["request_id"],
    ]
    local.flush()
    assert journal_lines() == []  # delivered: the segment holding them is gone
    assert hotpath.client().xlen(stream_key()) == 1
    local.close()
    assert list(journal_dir().glob("journal-*.jsonl")) == []


def test_journals_of_dead_processes_are_replayed_once_and_live_ones_left_alone(world):
    directory = journal_dir()
    directory.mkdir(parents=True, exist_ok=True)
    dead = directory / "journal-99999-dead-000000001.jsonl"
    events = [usage_event(world.org.pk, n) for n in range(3)]
    leave_journal(dead, events)
    live = directory / "journal-88888-live-000000001.jsonl"
    holder = os.open(live, os.O_WRONLY | os.O_CREAT)  # a live process holds its segment locked
    fcntl.flock(holder, fcntl.LOCK_EX)
    os.write(holder, orjson.dumps(usage_event(world.org.pk, 9)) + b"\n")
    try:
        # The first flush sweeps (this process's own publisher, whose thread the gateway
        # fixture started, may sweep first: either way the same happens).
        local = UsagePublisher()
        local._spooled = False
        local.flush()
        assert not dead.exists() and live.exists()
    finally:
        os.close(holder)
    drain(consumer="tests")
    stored = UsageEvent.objects.filter(organization_id=world.org.pk)
    assert sorted(stored.values_list("request_id", flat=True)) == sorted(
        e["request_id"] for e in events
    )
    # The live process has died since (its lock is gone), and the first segment is replayed
    # again (a sweep that died before deleting it): the old events are refused as duplicates.
    leave_journal(dead, events)
    again = UsagePublisher()
    again._spooled = False
    again.flush()
    assert not live.exists() and not dead.exists()
    drain(consumer="tests")
    assert stored.count() == 4


def gateway_process(port: int, settings, spool: Path) -> subprocess.Popen:
    name = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "REDIS_URL": GATEWAY_TEST_REDIS_URL,
        "GATEWAY_REDIS_NAMESPACE": settings.GATEWAY_REDIS_NAMESPACE,
        "GATEWAY_UPSTREAM_HOSTS": "127.0.0.1",
        "GATEWAY_LOCAL_UPSTREAM_HOSTS": "127.0.0.1",
        "USAGE_SPOOL_DIR": str(spool),
        "WEB_RUNS_BACKGROUND_WORK": "0",  # nobody ingests but this test
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "console.asgi:application", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 90  # a loaded machine
    while True:
        assert proc.poll() is None, "the gateway process exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 401:
                return proc
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the gateway process did not start"
        time.sleep(0.2)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_a_gateway_process_killed_under_load_loses_no_answered_request(
    world, simulator, settings, tmp_path, processes
):
    seed_prices()
    configure_upstream(
        organization=world.org, base_url=simulator.url, api_key="sk-sim-journal", actor=None
    )
    key, _ = mint_key(world.admin, world.org.workspaces.get(is_default=True))
    spool = tmp_path / "spool"
    settings.USAGE_SPOOL_DIR = str(spool)
    port = free_port()
    victim = gateway_process(port, settings, spool)
    processes.append(victim)

    answered: list[str] = []
    failed: list[str] = []
    stop = threading.Event()

    def load(n: int) -> None:
        body = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post("/v1/messages", json=body, headers={"x-api-key": key})
                except httpx.HTTPError as exc:
                    failed.append(repr(exc))
                    return  # the process is gone
                assert response.status_code == 200, response.text
                answered.append(response.headers["console-request-id"])

    threads = [threading.Thread(target=load, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(answered) < 400:
        assert time.monotonic() < deadline, f"only {len(answered)} answers under load"
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    stop.set()
    for thread in threads:
        thread.join(15)
    assert failed  # the clients saw the process die mid-load

    # What reached the stream before the kill, and what only the journal holds.
    drain(consumer="tests")
    before_replay = set(
        UsageEvent.objects.filter(organization_id=world.org.pk).values_list("request_id", flat=True)
    )
    journaled = {orjson.loads(line)["request_id"] for line in journal_lines()}
    missing = set(answered) - before_replay
    assert missing <= journaled, "answered requests neither in the stream nor in the journal"

    # The next gateway process replays the dead one's journal at start.
    processes.append(gateway_process(free_port(), settings, spool))
    deadline = time.monotonic() + 30
    while True:
        drain(consumer="tests")
        stored = list(
            UsageEvent.objects.filter(organization_id=world.org.pk).values_list(
                "request_id", flat=True
            )
        )
        if set(answered) <= set(stored) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(answered) <= set(stored), f"{len(set(answered) - set(stored))} answered lost"
    assert len(stored) == len(set(stored))  # none twice
    # Beyond the answered ones, at most the requests in flight when the process died (their
    # upstream work was done; the answer was being sent).
    assert len(stored) - len(answered) <= CLIENTS
    victim_token = f"journal-{victim.pid}-"
    assert not [p for p in journal_dir().glob("*.jsonl") if p.name.startswith(victim_token)]
