"""Ingestion of the usage stream into PostgreSQL: events stored once, hourly and daily rollups of
exactly the events stored, bad input set aside and counted, monthly partitions and retention.
Real PostgreSQL and Redis; the Celery worker tests are in test_usage_workers.py."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, date, datetime

import orjson
import pytest
from django.db import connection

from core import hotpath
from orgs.models import Organization
from usage import partitions
from usage.ingest import (
    GROUP,
    Consumer,
    dead_letter_key,
    drain,
    heartbeat_key,
    ingest_batch,
    stats,
    store_events,
)
from usage.models import UsageDaily, UsageEvent, UsageHourly, UsageMonthly
from usage.signals import usage_ingested
from usage.stream import stream_key

from .factories import OrganizationFactory
from .usage_helpers import MODEL, event, months_of_days, publish, snapshot, totals, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def own_namespace(settings, tmp_path):
    settings.GATEWAY_REDIS_NAMESPACE = f"t{os.getpid()}:{tmp_path.name}:"
    settings.USAGE_SPOOL_DIR = str(tmp_path / "spool")
    yield
    client = hotpath.client()
    for key in client.scan_iter(match=settings.GATEWAY_REDIS_NAMESPACE + "*"):
        client.delete(key)


def at(*args) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def partition_of(request_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM usage_usageevent WHERE request_id = %s",
            [request_id],
        )
        return cursor.fetchone()[0]


# -- exactly once -----------------------------------------------------------------------------


def test_the_same_batch_stored_twice_gives_the_same_events_and_rollups(world):
    batch = [event(world.org.pk, n, time=time.time() - n * 600) for n in range(40)]
    first = store_events(batch)
    assert first.inserted == 40 and not first.refused
    once = snapshot(world.org.pk)
    again = store_events(batch)
    assert again.inserted == 0 and again.duplicates == 40
    assert snapshot(world.org.pk) == once
    sums = totals(world.org.pk)
    assert sums["events"] == sums["hourly"] == sums["daily"] == sums["monthly"]
    assert sums["events"]["requests"] == 40


def test_a_batch_holding_one_event_twice_stores_and_counts_it_once(world):
    one = event(world.org.pk, 1)
    stored = store_events([one, dict(one), event(world.org.pk, 2)])
    assert stored.inserted == 2
    assert totals(world.org.pk)["hourly"]["requests"] == 2


def test_entries_redelivered_by_the_stream_are_not_counted_again(world):
    batch = [event(world.org.pk, n) for n in range(10)]
    publish(batch)
    assert drain(consumer="c1") == 10
    publish(batch[:5])  # a spool replay, a batch a killed consumer committed but never acked
    assert drain(consumer="c2") == 5
    assert totals(world.org.pk)["hourly"]["requests"] == 10
    assert stats()["stored"] == 10 and stats()["duplicates"] == 5
    assert hotpath.client().xlen(stream_key()) == 0  # acknowledged and deleted


def test_the_copy_path_and_the_portable_path_store_the_same(world):
    batch = [
        event(world.org.pk, n, time=time.time() - n * 1800, model=f"m{n % 3}", status=200 + n % 2,
              api_key_id=n % 4 or None, upstream_request_id="tab\there\\ and\nnewline")
        for n in range(30)
    ]  # fmt: skip
    store_events(batch, portable=False)
    by_copy = snapshot(world.org.pk)
    UsageEvent.objects.all().delete()
    UsageHourly.objects.all().delete()
    UsageDaily.objects.all().delete()
    UsageMonthly.objects.all().delete()
    store_events(batch, portable=True)
    by_orm = snapshot(world.org.pk)
    for name in by_copy:
        for a, b in zip(by_orm[name], by_copy[name], strict=True):
            assert a == b, (name, {k: (a[k], b[k]) for k in a if a[k] != b[k]})
    assert by_copy["events"][0]["upstream_request_id"] == "tab\there\\ and\nnewline"


# -- rollups ----------------------------------------------------------------------------------


def test_hours_are_utc_and_days_are_the_organizations_own(world):
    world.org.timezone = "America/Los_Angeles"
    world.org.save()
    # 2026-03-10 03:30 UTC is still March 9 in Los Angeles (UTC-7 since March 8).
    store_events([
        event(world.org.pk, 1, time=at(2026, 3, 10, 3, 30), cost_micros=500, input_tokens=5),
        event(world.org.pk, 2, time=at(2026, 3, 10, 3, 59, 59), cost_micros=700, input_tokens=7),
        event(world.org.pk, 3, time=at(2026, 3, 10, 8, 0), cost_micros=100, status=529),
    ], now=at(2026, 3, 11))  # fmt: skip
    hourly = {row.hour: row for row in UsageHourly.objects.filter(organization_id=world.org.pk)}
    assert set(hourly) == {
        datetime(2026, 3, 10, 3, tzinfo=UTC),
        datetime(2026, 3, 10, 8, tzinfo=UTC),
    }
    three = hourly[datetime(2026, 3, 10, 3, tzinfo=UTC)]
    assert (three.requests, three.errors, three.cost_micros, three.input_tokens) == (2, 0, 1200, 12)
    assert hourly[datetime(2026, 3, 10, 8, tzinfo=UTC)].errors == 1
    daily = {
        row.day: row.requests for row in UsageDaily.objects.filter(organization_id=world.org.pk)
    }
    assert daily == {date(2026, 3, 9): 2, date(2026, 3, 10): 1}


@pytest.mark.parametrize("portable", [False, True], ids=["copy", "orm"])
def test_months_are_the_organizations_own_and_counted_once(world, portable):
    world.org.timezone = "America/Los_Angeles"
    world.org.save()
    # 2026-04-01 05:00 UTC is still March 31 in Los Angeles: March's; 08:00 UTC is April's.
    batch = [
        event(world.org.pk, 1, time=at(2026, 4, 1, 5, 0), cost_micros=500, model="m1"),
        event(world.org.pk, 2, time=at(2026, 4, 1, 8, 0), cost_micros=700, model="m1"),
        event(world.org.pk, 3, time=at(2026, 3, 2, 12, 0), cost_micros=100, status=529),
        event(world.org.pk, 4, time=at(2026, 4, 20, 12, 0), cost_micros=1, api_key_id=None),
    ]
    store_events(batch, now=at(2026, 4, 21), portable=portable)
    store_events(batch[:3], now=at(2026, 4, 21), portable=portable)  # a replay adds nothing
    months = {
        (row.month, row.model, row.api_key_id): (row.requests, row.errors, row.cost_micros)
        for row in UsageMonthly.objects.filter(organization_id=world.org.pk)
    }
    assert months == {
        (date(2026, 3, 1), "m1", 7): (1, 0, 500),
        (date(2026, 3, 1), MODEL, 7): (1, 1, 100),
        (date(2026, 4, 1), "m1", 7): (1, 0, 700),
        (date(2026, 4, 1), MODEL, 0): (1, 0, 1),
    }
    monthly, days_summed = months_of_days(world.org.pk)
    assert monthly == days_summed


def test_the_migration_fills_the_months_from_the_days_already_stored(world):
    from django.db.migrations.executor import MigrationExecutor

    before, after = (
        [("usage", "0011_failed_requests_by_key_and_workspace")],
        [("usage", "0012_monthly_rollups")],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        daily = executor.loader.project_state(before).apps.get_model("usage", "UsageDaily")
        for day, key, cost in ((date(2026, 1, 31), 7, 10), (date(2026, 2, 1), 7, 20),
                               (date(2026, 2, 28), 7, 30), (date(2026, 2, 3), 8, 5)):  # fmt: skip
            daily.objects.create(organization_id=world.org.pk, day=day, api_key_id=key,
                                 model=MODEL, requests=1, cost_micros=cost)  # fmt: skip
        executor = MigrationExecutor(connection)
        executor.migrate(after)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    months = {
        (row.month, row.api_key_id): (row.requests, row.cost_micros)
        for row in UsageMonthly.objects.filter(organization_id=world.org.pk)
    }
    assert months == {
        (date(2026, 1, 1), 7): (1, 10),
        (date(2026, 2, 1), 7): (2, 50),
        (date(2026, 2, 1), 8): (1, 5),
    }


def test_rollups_are_kept_by_workspace_key_and_model(world):
    store_events([
        event(world.org.pk, 1, workspace_id=1, api_key_id=1, model="a"),
        event(world.org.pk, 2, workspace_id=1, api_key_id=1, model="a"),
        event(world.org.pk, 3, workspace_id=1, api_key_id=2, model="a"),
        event(world.org.pk, 4, workspace_id=2, api_key_id=3, model="b"),
        event(world.org.pk, 5, workspace_id=None, api_key_id=None, model="b"),
    ])  # fmt: skip
    rows = UsageDaily.objects.filter(organization_id=world.org.pk)
    found = sorted((r.workspace_id, r.api_key_id, r.model, r.requests, r.source) for r in rows)
    assert found == [(0, 0, "b", 1, "gateway"), (1, 1, "a", 2, "gateway"),
                     (1, 2, "a", 1, "gateway"), (2, 3, "b", 1, "gateway")]  # fmt: skip


def test_events_of_a_deleted_key_workspace_or_organization_are_stored(world):
    gone = OrganizationFactory()
    gone_id = gone.pk
    gone.delete()
    stored = store_events([
        event(world.org.pk, 1, workspace_id=987654, api_key_id=123456, time=at(2026, 3, 9)),
        event(gone_id, 2, time=at(2026, 3, 10, 3, 30)),
    ], now=at(2026, 3, 11))  # fmt: skip
    assert stored.inserted == 2 and not stored.refused
    assert UsageHourly.objects.get(organization_id=world.org.pk).api_key_id == 123456
    # An organization that no longer exists has no time zone: its days are UTC days.
    assert UsageDaily.objects.get(organization_id=gone_id).day == date(2026, 3, 10)


def test_usage_ingested_tells_which_organizations_got_new_usage_and_when(world):
    seen = []

    def receiver(sender, spans, source, **kwargs):
        seen.append((source, spans))

    usage_ingested.connect(receiver)
    try:
        batch = [event(world.org.pk, n, time=at(2026, 3, 10, n)) for n in range(3)]
        batch.append(event(world.other_org.pk, 9, time=at(2026, 3, 10, 5), cost_micros=42))
        store_events(batch, now=at(2026, 3, 11))
        store_events(batch, now=at(2026, 3, 11))  # a replay stores nothing, says nothing
    finally:
        usage_ingested.disconnect(receiver)
    [(source, spans)] = seen
    assert source == "gateway"
    by_org = {span.organization_id: span for span in spans}
    mine = by_org[world.org.pk]
    assert (mine.first, mine.last, mine.events) == (
        datetime(2026, 3, 10, 0, tzinfo=UTC),
        datetime(2026, 3, 10, 2, tzinfo=UTC),
        3,
    )
    assert mine.cost_micros == 1000 + 1001 + 1002
    assert by_org[world.other_org.pk].cost_micros == 42


def test_billing_reads_spend_from_rollups_that_outlive_raw_events(world):
    from billing import selectors

    world.org.timezone = "Europe/Paris"
    world.org.save()
    store_events([
        event(world.org.pk, 1, cost_micros=2_500_000, time=at(2026, 3, 1, 0, 30)),  # Paris: Mar 1
        event(world.org.pk, 2, cost_micros=1_000_000, time=at(2026, 2, 28, 22, 30)),  # Feb 28
    ], now=at(2026, 3, 2))  # fmt: skip
    UsageEvent.objects.all().delete()  # raw events gone (retention): the month's spend stays
    assert selectors.period_spend(world.org.pk, date(2026, 3, 1)) == 2_500_000


# -- partitions -------------------------------------------------------------------------------


def test_an_event_at_the_last_tenth_of_a_second_of_a_month_and_its_replay_land_once(world):
    last = event(world.org.pk, 1, time=at(2026, 1, 31, 23, 59, 59, 900_000))
    first = event(world.org.pk, 2, time=at(2026, 2, 1))
    now = at(2026, 2, 1, 0, 5)
    assert store_events([last, first], now=now).inserted == 2
    assert partition_of(last["request_id"]) == "usage_usageevent_p2026_01"
    assert partition_of(first["request_id"]) == "usage_usageevent_p2026_02"
    # Replayed after midnight, alone and with others: the same row, not a second one.
    assert store_events([last], now=now + 3600).inserted == 0
    assert store_events([first, last, event(world.org.pk, 3, time=now)], now=now).inserted == 1
    assert UsageEvent.objects.filter(request_id=last["request_id"]).count() == 1
    assert totals(world.org.pk)["hourly"]["requests"] == 3
    days = dict(UsageDaily.objects.values_list("day", "requests"))
    assert days == {date(2026, 1, 31): 1, date(2026, 2, 1): 2}


def test_partitions_are_made_ahead_and_old_ones_dropped_by_retention(world):
    partitions.forget_known()
    made = partitions.create_future_partitions(ahead=3, now=datetime(2026, 11, 15, tzinfo=UTC))
    assert made == [date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1), date(2027, 2, 1)]
    assert set(made) <= set(partitions.existing_partitions())
    short = OrganizationFactory(usage_retention_months=3)
    old, kept = at(2025, 9, 30, 12), at(2025, 10, 1, 12)
    store_events([event(world.org.pk, 1, time=old), event(world.org.pk, 2, time=kept),
                  event(short.pk, 3, time=kept), event(short.pk, 4, time=at(2026, 7, 31, 23)),
                  event(short.pk, 5, time=at(2026, 8, 1))], now=at(2026, 11, 15))  # fmt: skip
    done = partitions.drop_expired_partitions(now=datetime(2026, 11, 15, tzinfo=UTC))
    # 13 months back from November 2026: October 2025 on is kept, September 2025 dropped whole.
    assert date(2025, 9, 1) in done["dropped"]
    assert "usage_usageevent_p2025_09" not in _tables()
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == {
        f"req_t_{world.org.pk}_2",
        f"req_t_{short.pk}_5",
    }  # the short-retention organization keeps August 2026 on (3 months before November)
    assert done["deleted_rows"] == 2
    # Rollups stay: the months' totals outlive the raw events.
    assert UsageDaily.objects.filter(organization_id=short.pk).count() == 3
    # An event of a dropped month arriving late is stored again (its partition is remade).
    assert store_events([event(world.org.pk, 6, time=old)], now=at(2026, 11, 15)).inserted == 1


def _tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE 'usage_usageevent_p%%'")
        return {name for (name,) in cursor.fetchall()}


# -- bad input --------------------------------------------------------------------------------


def test_malformed_events_are_set_aside_counted_and_the_rest_stored(world):
    good = [event(world.org.pk, n) for n in range(3)]
    bad = [
        b"{not json",
        b"[1, 2, 3]",
        orjson.dumps({"time": time.time(), "organization_id": world.org.pk}),  # no request id
        orjson.dumps(event(world.org.pk, 10, input_tokens=-5)),
        json.dumps(event(world.org.pk, 11, output_tokens=10**30)).encode(),
        orjson.dumps(event(world.org.pk, 12, cache_read_input_tokens=2 * 10**12)),
        orjson.dumps(event(world.org.pk, 13, time="yesterday")),
        orjson.dumps(event(world.org.pk, 14, time=0)),  # 1970
        orjson.dumps(event(world.org.pk, 15, time=time.time() + 7 * 86400)),  # next week
        orjson.dumps(event(world.org.pk, 16, cost_micros=-1)),
        orjson.dumps(event(world.org.pk, 17, status="200")),
        orjson.dumps(event(world.org.pk, 18, organization_id=None)),
        orjson.dumps(event(world.org.pk, 19, api_key_id="7")),
        orjson.dumps(
            event(world.org.pk, 20, cache_creation_input_tokens=5, cache_creation_1h_input_tokens=6)
        ),
    ]
    publish([good[0], *bad[:7], good[1], *bad[7:], good[2]])
    assert drain(consumer="c") == len(good) + len(bad)
    assert UsageEvent.objects.count() == 3
    assert totals(world.org.pk)["daily"]["requests"] == 3
    aside = hotpath.client().xrange(dead_letter_key())
    assert len(aside) == len(bad) and stats()["refused"] == len(bad)
    reasons = {fields[b"reason"].decode() for _, fields in aside}
    assert {"unreadable", "input_tokens is out of range", "time out of range",
            "not an event (a JSON object)", "request_id missing or invalid"} <= reasons  # fmt: skip
    assert hotpath.client().xlen(stream_key()) == 0  # the consumer moved on


def test_an_event_the_database_refuses_is_found_and_set_aside_alone(world):
    with connection.cursor() as cursor:  # a real refusal by PostgreSQL, of one model name
        cursor.execute(
            "ALTER TABLE usage_usageevent ADD CONSTRAINT test_refused CHECK (model <> 'refuse-me')"
        )
    try:
        batch = [event(world.org.pk, n) for n in range(20)]
        batch[13]["model"] = "refuse-me"
        stored = store_events(batch)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE usage_usageevent DROP CONSTRAINT test_refused")
    assert [e["request_id"] for e, _ in stored.refused] == [batch[13]["request_id"]]
    assert "database" in stored.refused[0][1]
    assert stored.inserted == 19
    assert totals(world.org.pk)["hourly"]["requests"] == 19


# -- consumers --------------------------------------------------------------------------------


def test_entries_a_dead_consumer_left_pending_are_claimed_within_seconds(world):
    client = hotpath.client()
    publish([event(world.org.pk, n) for n in range(8)])
    ingest_batch(consumer="c0", count=1)  # ensures the group
    # A consumer reads five entries and dies before storing them: no heartbeat any more.
    client.xreadgroup(GROUP, "dead", {stream_key(): ">"}, count=5)
    assert not client.exists(heartbeat_key("dead"))
    stop = threading.Event()
    loop = Consumer("alive", block_ms=100)
    thread = threading.Thread(target=loop.run, args=(stop,))
    started = time.monotonic()
    thread.start()
    try:
        wait_for(lambda: UsageEvent.objects.count() == 8, "all events stored", timeout=15)
        elapsed = time.monotonic() - started
        wait_for(
            lambda: {m["name"] for m in client.xinfo_consumers(stream_key(), GROUP)} == {b"alive"},
            "dead consumers removed",
            timeout=10,
        )
    finally:
        stop.set()
        thread.join(10)
    assert elapsed < 6
    assert totals(world.org.pk)["hourly"]["requests"] == 8


def test_a_stream_deleted_under_a_waiting_consumer_is_no_fault(world):
    client = hotpath.client()
    stop = threading.Event()
    loop = Consumer("waiting", block_ms=2000)
    thread = threading.Thread(target=loop.run, args=(stop,))
    thread.start()
    try:
        publish([event(world.org.pk, 1)])
        wait_for(lambda: UsageEvent.objects.count() == 1, "the first event stored")
        time.sleep(0.3)  # blocked in XREADGROUP now
        client.delete(stream_key())  # what a FLUSHDB does to it
        time.sleep(0.3)
        publish([event(world.org.pk, 2)])
        wait_for(lambda: UsageEvent.objects.count() == 2, "the next event stored")
    finally:
        stop.set()
        thread.join(10)
    assert loop.faults == 0


def test_a_live_consumers_pending_entries_are_left_to_it(world):
    client = hotpath.client()
    publish([event(world.org.pk, n) for n in range(4)])
    ingest_batch(consumer="c0", count=1)
    client.set(heartbeat_key("busy"), 1, px=60_000)  # alive, in the middle of a long batch
    client.xreadgroup(GROUP, "busy", {stream_key(): ">"}, count=3)
    from usage.ingest import reclaim_dead

    time.sleep(1.1)  # the entries are idle long enough to be claimed, were it dead
    assert reclaim_dead("other") == 0
    pending = client.xpending(stream_key(), GROUP)
    assert pending["pending"] == 3


def test_the_consume_usage_command_stops_on_sigterm(world, tmp_path):
    import signal
    import subprocess
    import sys

    from django.conf import settings

    from .usage_helpers import ROOT, worker_env

    publish([event(world.org.pk, n) for n in range(5)])
    env = worker_env(settings.REDIS_URL, DJANGO_SETTINGS_MODULE="console.settings")
    log = tmp_path / "consume.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "manage.py", "consume_usage"], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_for(lambda: UsageEvent.objects.count() == 5, "events stored", timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    assert proc.returncode == 0, log.read_text()
    assert "Ingested 5 usage events" in log.read_text()


def test_an_organization_in_a_zone_postgresql_does_not_know_gets_utc_days(world):
    Organization.objects.filter(pk=world.org.pk).update(timezone="Not/AZone")
    store_events([event(world.org.pk, 1, time=at(2026, 3, 10, 23, 30))], now=at(2026, 3, 11))
    assert UsageDaily.objects.get(organization_id=world.org.pk).day == date(2026, 3, 10)


def test_impossible_server_tool_counts_and_costs_are_set_aside(world):
    good = event(world.org.pk, 1, web_search_requests=2, server_tool_cost_micros=20_000,
                 cost_micros=25_000)  # fmt: skip
    bad = [
        event(world.org.pk, 2, web_search_requests=-1),
        event(world.org.pk, 3, web_fetch_requests=10**13),
        event(world.org.pk, 4, code_execution_seconds=1.5),
        # a server-tool share larger than the whole cost
        event(world.org.pk, 5, server_tool_cost_micros=2_000, cost_micros=1_000),
        event(world.org.pk, 6, server_tool_cost_micros=-1),
    ]
    stored = store_events([good, *bad])
    assert stored.inserted == 1
    assert [reason for _, reason in stored.refused] == [
        "web_search_requests is out of range",
        "web_fetch_requests is out of range",
        "code_execution_seconds is not an integer",
        "cost out of range",
        "cost out of range",
    ]
    row = UsageDaily.objects.get(organization_id=world.org.pk)
    assert (row.web_search_requests, row.server_tool_cost_micros) == (2, 20_000)


def test_an_event_of_an_unknown_model_is_stored_with_its_fallback_flag(world):
    stored = store_events([
        event(world.org.pk, 1, model="claude-nova-9", fallback_priced=True),
        event(world.org.pk, 2, fallback_priced="yes"),  # only true is true
    ])  # fmt: skip
    assert stored.inserted == 2
    flags = dict(UsageEvent.objects.values_list("model", "fallback_priced"))
    assert flags == {"claude-nova-9": True, "claude-haiku-4-5-20251001": False}
    assert UsageHourly.objects.get(model="claude-nova-9").fallback_priced_requests == 1
