"""`make run`'s arrangement, run as `make run` runs it: the Redis stand-in
(`python -m console.standin_redis`) shared by two uvicorn worker processes with
WEB_RUNS_BACKGROUND_WORK. What one worker does must hold in the other: a revoked key is refused
by both, a monthly cap counts both workers' spend, and the workers drain the usage stream
themselves (no Celery worker, no test-side consumer), fast enough that a request is on the
dashboard within 5 s of its answer (the "real-time view", decision 0020)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
import redis
from django.db import connection

from apikeys.services import revoke_api_key
from billing import spend
from billing.models import SpendLimit
from core import hotpath
from gateway.services import configure_upstream
from tests.usage_helpers import dashboard_browser, real_time_view
from usage.models import UsageEvent

from .conftest import MODEL, mint_key, seed_prices
from .servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
BODY = {"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": "hello"}]}


def wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture
def standin() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.standin_redis", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"

    def answers() -> bool:
        assert proc.poll() is None, "the stand-in exited"
        try:
            return redis.Redis.from_url(url).ping()
        except redis.ConnectionError:
            return False

    wait_for(answers, "the Redis stand-in starting")
    yield url
    stop(proc)


@pytest.fixture
def console(standin, settings, tmp_path) -> Iterator[str]:
    """uvicorn with two workers, as `make run` starts it, on the test database."""
    settings.REDIS_URL = standin  # this process revokes keys and reads counters there too
    port = free_port()
    name = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "REDIS_URL": standin,
        "WEB_RUNS_BACKGROUND_WORK": "1",
        "GATEWAY_UPSTREAM_HOSTS": "127.0.0.1",
        "GATEWAY_LOCAL_UPSTREAM_HOSTS": "127.0.0.1",
        "GATEWAY_REDIS_NAMESPACE": settings.GATEWAY_REDIS_NAMESPACE,
        "USAGE_SPOOL_DIR": str(tmp_path / "spool"),
    }
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "console.asgi:application", "--port", str(port),
            "--workers", "2", "--log-level", "warning", "--no-access-log",
        ],
        cwd=ROOT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert proc.poll() is None, "uvicorn exited"
        try:
            return httpx.get(url + "/v1/models", timeout=1).status_code == 401
        except httpx.HTTPError:
            return False

    wait_for(answers, "uvicorn starting", timeout=90)  # two workers on a loaded machine
    yield url
    stop(proc)


@pytest.fixture
def demo(world, simulator, console):
    seed_prices()
    configure_upstream(
        organization=world.org, base_url=simulator.url, api_key="sk-sim-run-mode", actor=None
    )
    raw, row = mint_key(world.admin, world.org.workspaces.get(is_default=True))
    return world, console, raw, row


def post(url: str, key: str) -> int:
    # A new connection per request: the kernel spreads them over both workers.
    response = httpx.post(url + "/v1/messages", json=BODY, headers={"x-api-key": key}, timeout=20)
    return response.status_code


def test_a_request_is_on_the_dashboard_within_seconds_and_a_revoked_key_refused_everywhere(
    demo, client
):
    world, url, raw, row = demo
    # Real-time view: an Admin has the dashboard open; one request (the official SDK) is on it
    # within 5 s of its answer, drained by the web processes' own threads.
    sdk = anthropic.Anthropic(api_key=raw, base_url=url, max_retries=0)
    with dashboard_browser(client, world.admin.user, url) as browser:
        latency, one_page = real_time_view(
            browser, world.org.slug, lambda: sdk.messages.create(**BODY)
        )
    print(
        f"\nreal-time view, make run (2 uvicorn workers, stand-in Redis, in-process drain): "
        f"on the dashboard {latency:.2f} s after the answer (reference: one dashboard page "
        f"{one_page:.2f} s)"
    )
    assert latency <= 5.0, f"the request reached the dashboard after {latency:.2f} s"

    # A key revoked in this process is refused by both workers.
    assert [post(url, raw) for _ in range(10)] == [200] * 10
    revoke_api_key(key=row, actor=None)
    time.sleep(1.0)  # pub/sub: both workers' caches hear of it well within a second
    assert [post(url, raw) for _ in range(20)] == [401] * 20


def test_the_cap_counts_both_workers_and_the_workers_store_the_usage(demo):
    world, url, raw, _ = demo
    body_bytes = len(httpx.Request("POST", "http://x", json=BODY).content)
    reservation = spend.max_cost_micros(MODEL, BODY["max_tokens"], body_bytes)
    cap = 3 * reservation  # reached after a few requests: each costs a fraction of it
    SpendLimit.objects.create(organization=world.org, monthly_cap_micros=cap)
    time.sleep(6)  # the workers' limit caches (5 s) see the new cap
    statuses = [post(url, raw) for _ in range(60)]
    assert set(statuses) == {200, 400}
    # The workers drain the stream into PostgreSQL themselves (no consumer runs here).
    wait_for(
        lambda: UsageEvent.objects.filter(organization_id=world.org.pk).count() >= 60,
        "the workers storing the usage events",
    )
    events = UsageEvent.objects.filter(organization_id=world.org.pk)
    assert events.count() == 60
    spent = sum(e.cost_micros for e in events)
    # One counter for both workers: separate ones would let each spend up to the cap.
    assert cap // 2 < spent <= cap + reservation, (spent, cap, reservation)
    assert int(hotpath.client().hget(spend.counter_key(world.org.pk), "total")) == spent


def test_raising_a_reached_cap_lets_the_next_request_through_on_every_worker(demo):
    from datetime import UTC, datetime

    from billing import services
    from tests.factories import daily_usage

    world, url, raw, _ = demo
    limit = services.save_spend_limit(
        organization=world.org, actor=None, enabled=True, cap_micros=1_000_000,
        thresholds=[50, 80, 100],
    )  # fmt: skip
    daily_usage(world.org, datetime.now(UTC).date(), 1_000_000)  # the $1 is spent
    assert [post(url, raw) for _ in range(10)] == [400] * 10  # both workers refuse
    services.save_spend_limit(
        organization=world.org, actor=None, enabled=True, cap_micros=1_000_000_000,
        thresholds=[50, 80, 100], expected_version=limit.version,
    )  # fmt: skip
    time.sleep(1.0)  # pub/sub: both workers forget the old cap well within a second
    assert [post(url, raw) for _ in range(20)] == [200] * 20
