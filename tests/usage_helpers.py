"""Helpers of the usage ingestion tests: events as the gateway publishes them, a Redis namespace
per test, real Celery worker processes, a redis-server of a test's own, and the usage dashboard
read over HTTP as a logged-in user (the "real-time view" of the production and `make run`
process tests)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import redis
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from core import hotpath
from usage.models import UsageDaily, UsageEvent, UsageHourly, UsageMonthly
from usage.stream import FIELD, stream_key

ROOT = Path(__file__).resolve().parent.parent
MODEL = "claude-haiku-4-5-20251001"


def event(org_id: int, n: int, **fields) -> dict:
    """A usage event as the gateway publishes it (fields override the defaults)."""
    return {
        "request_id": f"req_t_{org_id}_{n}",
        "upstream_request_id": f"req_up_{n}",
        "time": time.time(),
        "organization_id": org_id,
        "workspace_id": 1,
        "api_key_id": 7,
        "endpoint": "messages",
        "model": MODEL,
        "stream": False,
        "status": 200,
        "error_type": "",
        "input_tokens": 100 + n,
        "output_tokens": 10 + n,
        "cache_creation_input_tokens": 0,
        "cache_creation_1h_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "standard",
        "cost_micros": 1000 + n,
        "latency_ms": 12.5,
        **fields,
    }


def publish(events: list, client=None) -> None:
    """XADD events to the usage stream (dicts as JSON; bytes as they are)."""
    client = client or hotpath.client()
    pipe = client.pipeline(transaction=False)
    for item in events:
        payload = item if isinstance(item, bytes) else orjson.dumps(item)
        pipe.xadd(stream_key(), {FIELD: payload})
    pipe.execute()


def snapshot(organization_id: int | None = None) -> dict:
    """Events and both rollups, as comparable values."""
    events = UsageEvent.objects.order_by("request_id", "created_at")
    hourly = UsageHourly.objects.order_by(
        "organization_id", "hour", "workspace_id", "api_key_id", "model"
    )
    daily = UsageDaily.objects.order_by(
        "organization_id", "day", "workspace_id", "api_key_id", "model"
    )
    monthly = UsageMonthly.objects.order_by(
        "organization_id", "month", "workspace_id", "api_key_id", "model"
    )
    if organization_id is not None:
        events = events.filter(organization_id=organization_id)
        hourly = hourly.filter(organization_id=organization_id)
        daily = daily.filter(organization_id=organization_id)
        monthly = monthly.filter(organization_id=organization_id)
    return {
        "events": list(events.values()),
        "hourly": [{k: v for k, v in row.items() if k != "id"} for row in hourly.values()],
        "daily": [{k: v for k, v in row.items() if k != "id"} for row in daily.values()],
        "monthly": [{k: v for k, v in row.items() if k != "id"} for row in monthly.values()],
    }


def months_of_days(organization_id: int) -> tuple[dict, dict]:
    """The monthly rollup rows, and the daily rows summed by month: they must be equal."""
    from collections import defaultdict

    keys = ("workspace_id", "api_key_id", "model", "source")
    counters = [
        f.name for f in UsageMonthly._meta.concrete_fields
        if f.name not in (*keys, "id", "organization_id", "month")
    ]  # fmt: skip
    summed: dict = defaultdict(lambda: dict.fromkeys(counters, 0))
    for row in UsageDaily.objects.filter(organization_id=organization_id).values():
        into = summed[(row["day"].replace(day=1), *(row[k] for k in keys))]
        for name in counters:
            into[name] += row[name]
    monthly = {
        (row["month"], *(row[k] for k in keys)): {name: row[name] for name in counters}
        for row in UsageMonthly.objects.filter(organization_id=organization_id).values()
    }
    return monthly, dict(summed)


def totals(organization_id: int) -> dict:
    """Sums over the events and over each rollup: they must agree."""
    fields = ("input_tokens", "output_tokens", "cost_micros")
    events = UsageEvent.objects.filter(organization_id=organization_id)
    result = {"events": {"requests": events.count(), **events.aggregate(**_sums(fields))}}
    for name, model in (("hourly", UsageHourly), ("daily", UsageDaily), ("monthly", UsageMonthly)):
        rows = model.objects.filter(organization_id=organization_id)
        result[name] = rows.aggregate(requests=Sum("requests"), **_sums(fields))
    return result


def _sums(fields) -> dict:
    return {name: Sum(name) for name in fields}


def wait_for(predicate, what: str, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: did not happen within {timeout}s"
        time.sleep(interval)


_REQUESTS_TOTAL = re.compile(r'data-testid="total-requests">([0-9,]+)<')


def dashboard_browser(client, user, base_url: str) -> httpx.Client:
    """An HTTP client logged in as `user` on a server started by the test (a real session,
    stored in the database the servers share), keeping its connection open as a browser does."""
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return httpx.Client(base_url=base_url, cookies={name: client.cookies[name].value}, timeout=30)


def dashboard_requests(browser: httpx.Client, slug: str) -> int:
    """The "Requests" total of the usage dashboard's default view (the last 7 days), read from
    the page the server returns to the logged-in browser."""
    response = browser.get(f"/o/{slug}/usage/")
    assert response.status_code == 200, (response.status_code, response.text[:500])
    found = _REQUESTS_TOTAL.search(response.text)
    assert found, response.text[:2000]
    return int(found.group(1).replace(",", ""))


def real_time_view(browser: httpx.Client, slug: str, send) -> tuple[float, float]:
    """The "real-time view" (decision 0020), measured: with the dashboard open (it shows no
    request; loaded twice, so the second is a warm page: the reference), call `send()` (one
    request through the gateway, returning once answered), then poll the page until it shows
    the request. Returns (seconds from the answer to the page showing it, one warm page)."""
    assert dashboard_requests(browser, slug) == 0
    started = time.monotonic()
    assert dashboard_requests(browser, slug) == 0
    one_page = time.monotonic() - started
    send()
    return seconds_until_dashboard_shows(browser, slug, 1, since=time.monotonic()), one_page


def seconds_until_dashboard_shows(
    browser: httpx.Client, slug: str, requests: int, since: float
) -> float:
    """Poll the dashboard until it shows `requests` requests; the seconds from `since` (a
    `time.monotonic()`, when the request was answered) to the end of the page that showed them.
    Gives up after 30 s (the caller asserts its own bound on what this returns)."""
    while True:
        shown = dashboard_requests(browser, slug)
        elapsed = time.monotonic() - since
        if shown >= requests:
            assert shown == requests, f"the dashboard shows {shown} requests, {requests} sent"
            return elapsed
        assert elapsed < 30, f"the dashboard still shows {shown} requests after {elapsed:.1f} s"
        time.sleep(0.1)


def database_url() -> str:
    db = connection.settings_dict
    return (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT'] or 5432}/"
        f"{db['NAME']}"
    )


@dataclass
class Worker:
    """A real `celery worker` process (solo pool) with the usage probe app installed."""

    log_path: Path
    env: dict
    process: subprocess.Popen | None = None
    log: object = field(default=None)

    def start(self, may_die: bool = False) -> Worker:
        """Start and wait until the usage consumer runs; `may_die` for a worker told to kill
        itself, which can do so before this returns."""
        self.log = self.log_path.open("a+")
        queue = f"usage-test-{os.getpid()}-{time.monotonic_ns()}"  # no task of others reaches it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "console", "worker", "-Q", queue,
             "--pool", "solo", "--without-heartbeat", "--without-gossip", "--without-mingle",
             "-l", "info"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(
            lambda: "usage consumer" in self.text().lower() or self._died(),
            "worker start",
            timeout=90,
        )  # a loaded machine starts Celery slowly
        assert may_die or self.process.poll() is None, "the worker died:\n" + self.text()
        return self

    def _died(self) -> bool:
        return self.process.poll() is not None

    def text(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def worker_env(redis_url: str, **extra) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_usage_probe",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "GATEWAY_REDIS_NAMESPACE": settings.GATEWAY_REDIS_NAMESPACE,
        "USAGE_SPOOL_DIR": settings.USAGE_SPOOL_DIR,
        "EMAIL_URL": "consolemail://",
        "WEB_RUNS_BACKGROUND_WORK": "false",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        **{k: str(v) for k, v in extra.items()},
    }


class RedisServer:
    """A redis-server of the test's own on a free port (append-only file, fsync always, as
    production Redis should run), which the test may stop and start."""

    def __init__(self, directory: Path) -> None:
        from tests.gateway.servers import free_port

        assert shutil.which("redis-server"), "redis-server is required"
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
        wait_for(lambda: _pings(client), "redis-server start", timeout=10, interval=0.05)

    def shutdown_nosave(self) -> None:
        """SHUTDOWN NOSAVE: no snapshot, what the append-only file holds survives."""
        with contextlib.suppress(redis.ConnectionError):  # it closes the connection
            redis.Redis.from_url(self.url).shutdown(nosave=True)
        assert self.process is not None
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False
