"""The production processes of docker-compose.yml, started by hand as compose starts them: the
ASGI server with two workers (`uvicorn console.asgi:application`), a Celery worker and Celery
beat, against the local PostgreSQL and a Redis of the test's own (append-only, like compose's).
Requests go through the gateway with the official SDK; the first is on the dashboard (read over
HTTP as a logged-in Admin) within 5 s of its answer (the "real-time view", decision 0020),
their usage reaches the rollups, a spending threshold's email goes out from the worker and is in
the audit log; then each process gets SIGTERM and exits cleanly, and every request's event is
stored once.

The commands are the compose file's own (tests/test_compose.py checks the file; this runs it)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import anthropic
import httpx
import pytest
from django.db import connection
from django.urls import reverse

from audit.models import AuditEvent
from billing import services, spend
from gateway.services import configure_upstream
from tests.deployment import ROOT, compose_config
from tests.usage_helpers import (
    RedisServer,
    dashboard_browser,
    real_time_view,
    wait_for,
)
from usage.models import UsageDaily, UsageEvent

from .conftest import MODEL, mint_key, seed_prices
from .servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)
BODY = {"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": "hello"}]}


class Process:
    def __init__(self, name: str, argv: list[str], env: dict, directory: Path) -> None:
        self.name = name
        self.log_path = directory / f"{name}.log"
        self.log = self.log_path.open("w")
        self.env = env
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self, timeout: float = 60) -> int:
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            pytest.fail(f"{self.name} did not stop within {timeout} s of SIGTERM:\n{self.text()}")


def compose_command(service: str, port: int) -> list[str]:
    """The service's command from docker-compose.yml, run with this interpreter's venv."""
    argv = list(compose_config()[0]["services"][service]["command"])
    if argv[0] == "uvicorn":
        argv = [*argv, "--workers", "2"]  # compose: WEB_CONCURRENCY=2
        argv[argv.index("--port") + 1] = str(port)
        argv[argv.index("--host") + 1] = "127.0.0.1"
    return [sys.executable, "-m", argv[0], *argv[1:]]


def health_check(service: str, env: dict) -> subprocess.Popen:
    """The service's compose health check, run here (`$HOSTNAME`: this machine's, as in the
    container, where it is the container's)."""
    kind, *test = compose_config()[0]["services"][service]["healthcheck"]["test"]
    assert kind == "CMD-SHELL", test
    command = test[0].replace("$HOSTNAME", socket.gethostname())
    path = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # this venv's celery
    return subprocess.Popen(
        command, shell=True, cwd=ROOT, env={**env, "PATH": path}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.fixture
def stack(world, simulator, settings, tmp_path):
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    settings.REDIS_URL = redis_server.url  # this process reads counters and the stream there
    settings.GATEWAY_REDIS_NAMESPACE = ""
    (tmp_path / "prometheus").mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "REDIS_URL": redis_server.url,
        "GATEWAY_REDIS_NAMESPACE": "",
        "GATEWAY_UPSTREAM_HOSTS": "127.0.0.1",
        "GATEWAY_LOCAL_UPSTREAM_HOSTS": "127.0.0.1",
        "USAGE_SPOOL_DIR": str(tmp_path / "spool"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        # filemail://<path> drops the path's first slash: four make an absolute path.
        "EMAIL_URL": f"filemail:///{tmp_path / 'mail'}",
        "WEB_RUNS_BACKGROUND_WORK": "false",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_WORKER_CONCURRENCY": "1",
        "LOG_FORMAT": "json",
        "CONSOLE_BASE_URL": "https://console.example.com",
    }
    port = free_port()
    processes = {
        name: Process(name, compose_command(name, port), env, tmp_path)
        for name in ("web", "worker", "beat")
    }
    url = f"http://127.0.0.1:{port}"

    def web_answers() -> bool:
        assert processes["web"].alive(), processes["web"].text()
        try:
            return httpx.get(url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(web_answers, "uvicorn starting", timeout=120)
        wait_for(
            lambda: httpx.get(url + "/readyz", timeout=10).status_code == 200,
            "the stack ready (the worker's heartbeat)", timeout=120,
        )  # fmt: skip
        yield url, processes, tmp_path
    finally:
        for process in processes.values():
            if process.alive():
                process.popen.kill()
                process.popen.wait(10)
        redis_server.stop()


def test_the_compose_processes_serve_meter_show_alert_and_stop_cleanly(
    stack, world, simulator, client
):
    url, processes, directory = stack
    seed_prices()
    configure_upstream(organization=world.org, base_url=simulator.url, api_key="sk-sim-procs",
                       actor=None)  # fmt: skip
    key, _ = mint_key(world.admin, world.org.workspaces.get(is_default=True))
    sdk = anthropic.Anthropic(api_key=key, base_url=url, max_retries=0, timeout=30)

    # Real-time view: an Admin has the dashboard open; one request is on it within 5 s of its
    # answer (from the answer: the processes' start-up is not counted).
    with dashboard_browser(client, world.admin.user, url) as browser:
        latency, one_page = real_time_view(
            browser, world.org.slug, lambda: sdk.messages.create(**BODY)
        )
    print(
        f"\nreal-time view, production (uvicorn + celery worker + beat): on the dashboard "
        f"{latency:.2f} s after the answer (reference: one dashboard page {one_page:.2f} s)"
    )
    assert latency <= 5.0, f"the request reached the dashboard after {latency:.2f} s"
    sent = 1
    body_bytes = len(httpx.Request("POST", "http://x", json=BODY).content)
    reservation = spend.max_cost_micros(MODEL, BODY["max_tokens"], body_bytes)
    cap = 10_000  # one cent: a few dozen requests cross 50 %
    assert reservation < cap // 2
    services.save_spend_limit(
        organization=world.org, actor=world.admin.user, enabled=True, cap_micros=cap,
        thresholds=[50, 80, 100],
    )  # fmt: skip
    time.sleep(6)  # the web workers' limit caches (5 s) see the new cap

    mail_dir = directory / "mail"
    statuses = []
    while not (mail_dir.exists() and any(mail_dir.iterdir())):
        assert sent < 300, (
            f"no threshold email after {sent} requests {Counter(statuses)}; events "
            f"{UsageEvent.objects.filter(organization_id=world.org.pk).count()}; audit "
            f"{list(AuditEvent.objects.values_list('action', flat=True))[-5:]}\n"
            + processes["worker"].text()[-3000:]
        )
        try:
            sdk.messages.create(**BODY)
            statuses.append(200)
        except anthropic.BadRequestError:
            statuses.append(400)  # the cap reached: refused, and metered as a refusal
        sent += 1
        if sent % 10 == 0:
            time.sleep(1)  # let the worker ingest and evaluate
    time.sleep(2)  # every recipient's message written
    messages = "".join(path.read_text() for path in mail_dir.iterdir())
    assert "has spent 50% of its $0.01" in messages.replace("\n ", " "), messages[:2000]
    assert "To: admin@example.com" in messages and "To: finance@example.com" in messages

    # The usage reached the raw events, the rollups and the dashboard.
    wait_for(
        lambda: UsageEvent.objects.filter(organization_id=world.org.pk).count() == sent,
        "every request stored", timeout=60,
    )  # fmt: skip
    daily = sum(d.requests for d in UsageDaily.objects.filter(organization_id=world.org.pk))
    assert daily == sent
    client.force_login(world.admin.user)
    dashboard = client.get(reverse("usage:overview", args=[world.org.slug]))
    assert dashboard.status_code == 200
    assert f"{sent:,}" in dashboard.content.decode() or str(sent) in dashboard.content.decode()
    # The alert is in the audit log, sent by the system.
    assert AuditEvent.objects.filter(organization=world.org, action="billing.alert_sent").exists()

    # /metrics adds up both web workers.
    text = httpx.get(url + "/metrics", timeout=10).text
    counted = sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
        if line.startswith("gateway_requests_total{") and 'endpoint="messages"' in line
    )  # fmt: skip
    assert counted == sent, text

    # The compose health checks of the worker and of beat answer (celery inspect ping).
    checks = {name: health_check(name, processes[name].env) for name in ("worker", "beat")}
    for name, check in checks.items():
        output, _ = check.communicate(timeout=60)
        assert check.returncode == 0 and "pong" in output, f"{name}: {output}"

    # A last burst, then SIGTERM to each process in turn: nothing is lost.
    burst = 0
    for _ in range(15):
        with contextlib.suppress(anthropic.BadRequestError):  # the cap reached
            sdk.messages.create(**BODY)
        burst += 1
    assert processes["web"].terminate() == 0  # graceful: its queued events flushed to Redis
    wait_for(
        lambda: UsageEvent.objects.filter(organization_id=world.org.pk).count() == sent + burst,
        "the worker storing the last burst", timeout=60,
    )  # fmt: skip
    assert processes["worker"].terminate() == 0
    assert processes["beat"].terminate() == 0
    worker_log = processes["worker"].text()
    assert "Usage consumer" in worker_log and "stopped" in worker_log
    assert "Traceback" not in worker_log, worker_log[-4000:]
    assert "Traceback" not in processes["web"].text(), processes["web"].text()[-4000:]
    assert "beat: Starting" in processes["beat"].text()
    # LOG_FORMAT=json: every line the web processes wrote, uvicorn's own included, is JSON.
    for line in processes["web"].text().splitlines():
        assert isinstance(json.loads(line), dict), line
    # Exactly once: no event stored twice.
    ids = list(UsageEvent.objects.filter(organization_id=world.org.pk).values_list("request_id"))
    assert len(ids) == len(set(ids)) == sent + burst
    # The logs of all three processes hold no key material.
    logs = "".join(p.text() for p in processes.values())
    assert key[4:20] not in logs and "sk-sim-procs" not in logs
