"""/healthz, /readyz and /metrics (console/health.py) against the real PostgreSQL and Redis: a
missing worker heartbeat, a usage stream falling behind, Redis or the database down each turn
/readyz into a 503 that names the check; /metrics shows what the gateway counted and refuses
anyone but the operator's scraper."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import anthropic
import pytest

from core import hotpath
from usage.ingest import Consumer
from usage.stream import stream_key

from .conftest import MODEL

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def production_hosts(settings):
    """A console that answers console.example.com only, over https: probes still get in."""
    settings.ALLOWED_HOSTS = ["console.example.com"]
    settings.SECURE_SSL_REDIRECT = True


@pytest.fixture
def worker():
    """A real ingestion consumer (the loop Celery workers run), beating its heartbeat."""
    stop = threading.Event()
    consumer = Consumer("test-health")
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while hotpath.client().get(stream_key() + ":heartbeat") is None:
        assert time.monotonic() < deadline, "the consumer never beat"
        time.sleep(0.1)
    yield consumer
    stop.set()
    thread.join(20)


def ready(client) -> tuple[int, dict]:
    response = client.get("/readyz", HTTP_HOST="10.1.2.3")
    return response.status_code, json.loads(response.content)


def test_healthz_answers_a_probe_by_address(client, production_hosts):
    response = client.get("/healthz", HTTP_HOST="10.1.2.3")
    assert response.status_code == 200 and response.content == b"ok"
    # Every other page still checks the host.
    assert client.get("/accounts/login/", HTTP_HOST="10.1.2.3").status_code == 400


def test_readyz_names_a_missing_worker(client, production_hosts):
    status, body = ready(client)
    assert status == 503
    assert body["failing"] == ["worker"]
    assert body["checks"]["worker"]["detail"] == "no usage ingestion worker has ever run"
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]


def test_readyz_is_ready_with_a_worker_and_fails_on_an_old_heartbeat(client, worker):
    status, body = ready(client)
    assert status == 200, body
    assert body["status"] == "ready" and body["failing"] == []
    # A worker that died 90 s ago: its last stamp stays, and is too old.
    hotpath.client().set(stream_key() + ":heartbeat", repr(time.time() - 90))
    time.sleep(0)  # the live consumer re-stamps within a second; read at once
    from console.health import readiness

    checks = {c.name: c for c in readiness(now=time.time() + 120)}
    assert not checks["worker"].ok and "no worker heartbeat for" in checks["worker"].detail


def test_readyz_fails_when_usage_falls_behind(client, settings):
    # An entry waiting since 10 minutes ago (its id is its time): ingestion is not keeping up.
    settings.READYZ_MAX_USAGE_LAG = 300
    hotpath.client().set(stream_key() + ":heartbeat", repr(time.time()))
    old_ms = int((time.time() - 600) * 1000)
    hotpath.client().xadd(stream_key(), {"b": b"{}"}, id=f"{old_ms}-0")
    status, body = ready(client)
    assert status == 503 and body["failing"] == ["usage_lag"], body
    assert "1 entries waiting, oldest 6" in body["checks"]["usage_lag"]["detail"]


def test_readyz_names_redis_when_it_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    status, body = ready(client)
    assert status == 503
    assert body["failing"][0] == "redis"
    assert "ConnectionError" in body["checks"]["redis"]["detail"]
    assert body["checks"]["database"]["ok"]


def test_readyz_names_the_database_when_it_is_down():
    env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/console"}
    code = (
        "import django, json; django.setup(); from console.health import readiness;"
        "print(json.dumps({c.name: [c.ok, c.detail] for c in readiness()}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    checks = json.loads(result.stdout.strip().splitlines()[-1])
    assert checks["database"][0] is False and "OperationalError" in checks["database"][1]


def scrape(client, **headers) -> tuple[int, str]:
    response = client.get("/metrics", **headers)
    return response.status_code, response.content.decode()


def sample(text: str, name: str, **labels) -> float:
    """The value of the sample `name` whose labels include `labels` (0 when there is none)."""
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if metric == name and labels.items() <= found.items():
            return float(value)
    return 0.0


def test_metrics_only_for_the_operators_scraper(client, settings):
    settings.METRICS_TOKEN = "metrics-token-for-the-test"
    assert scrape(client, REMOTE_ADDR="203.0.113.9")[0] == 403
    # A request that came through a proxy is from outside, whatever the proxy's address.
    assert scrape(client, HTTP_X_FORWARDED_FOR="203.0.113.9")[0] == 403
    assert scrape(client, REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer wrong")[0] == 403
    status, text = scrape(
        client, REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer metrics-token-for-the-test"
    )
    assert status == 200 and "usage_stream_length" in text
    assert scrape(client)[0] == 200  # 127.0.0.1, directly: the default allowed network


def test_metrics_count_gateway_requests_refusals_and_the_usage_stream(client, gw, settings):
    from datetime import UTC, datetime

    from billing import services
    from tests.factories import daily_usage

    _, before = scrape(client)
    ok = sample(before, "gateway_requests_total", endpoint="messages", status="200", model=MODEL)
    refused = sample(before, "gateway_reservations_refused_total")
    sdk = gw.client()
    for _ in range(3):
        sdk.messages.create(
            model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.AuthenticationError):
        gw.client(key="sk-ant-api03-not-a-key").models.list()
    services.save_spend_limit(
        organization=gw.org, actor=None, enabled=True, cap_micros=1_000_000, thresholds=[50]
    )
    daily_usage(gw.org, datetime.now(UTC).date(), 1_000_000)  # the $1 is spent
    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.create(
            model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
    _, after = scrape(client)
    assert (
        sample(after, "gateway_requests_total", endpoint="messages", status="200", model=MODEL)
        == ok + 3
    )
    assert (
        sample(after, "gateway_requests_total", endpoint="models", status="401", model="none") >= 1
    )
    assert sample(after, "gateway_reservations_refused_total") == refused + 1
    assert sample(after, "gateway_request_duration_seconds_count", endpoint="messages") >= 4
    # The usage events wait in the stream until a worker ingests them.
    from usage.stream import publisher

    publisher().flush()
    _, text = scrape(client)
    assert sample(text, "usage_stream_length") >= 1
    assert sample(text, "console_redis_up") == 1
    assert "billing_alerts_sent_total" in text
