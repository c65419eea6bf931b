"""Fixtures for the gateway: the simulator and the console's ASGI app (gateway dispatched in
console/asgi.py) each served by uvicorn in a thread, keys minted through the API-keys service,
and helpers that read usage events the way production does (stream → consumer → rows)."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import anthropic
import pytest
import redis
from asgiref.sync import SyncToAsync
from django.db import connections

from apikeys.services import create_api_key
from billing import spend
from core import hotpath
from gateway import routing, unauthenticated
from gateway.services import configure_upstream
from gateway.simulator import Simulator
from usage import pricing
from usage.ingest import drain
from usage.models import UsageEvent
from usage.stream import publisher

from .servers import RunningServer, serve_in_thread

MODEL = "claude-haiku-4-5-20251001"


@pytest.fixture(scope="session")
def simulator() -> Iterator[RunningServer]:
    running = serve_in_thread(Simulator())
    yield running
    running.stop()


@pytest.fixture(scope="session")
def gateway() -> Iterator[RunningServer]:
    from console.asgi import application

    running = serve_in_thread(application)
    yield running
    running.stop()
    # Cache misses load in asgiref's shared thread: close its connection so the test database
    # can be dropped at the end of the run.
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


# The shared conftest flushes Redis db 15 before every test; a concurrent test run on the same
# machine would wipe this run's usage stream mid-test. The gateway's keys live in db 14 under a
# per-run namespace instead.
GATEWAY_TEST_REDIS_URL = (
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15").rsplit("/", 1)[0] + "/14"
)


@pytest.fixture(autouse=True)
def _fresh_gateway_caches(settings, tmp_path):
    settings.USAGE_SPOOL_DIR = str(tmp_path / "spool")
    settings.REDIS_URL = GATEWAY_TEST_REDIS_URL
    settings.GATEWAY_REDIS_NAMESPACE = namespace = f"test{os.getpid()}:{tmp_path.name}:"
    routing.forget_routes()
    spend.forget_limits()
    pricing.invalidate()
    unauthenticated.limiter.blocked.clear()  # addresses over the limit of refused requests
    yield
    publisher().flush()
    try:
        client = hotpath.client()
        for key in client.scan_iter(match=namespace + "*"):
            client.delete(key)
    except redis.RedisError:
        pass  # a test's own Redis, already stopped


@dataclass
class GatewayWorld:
    world: object
    url: str
    key: str  # a console key of the Admin, default workspace
    key_row: object
    org: object

    def client(self, key: str | None = None, **options) -> anthropic.Anthropic:
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 20)
        return anthropic.Anthropic(api_key=key or self.key, base_url=self.url, **options)


def mint_key(membership, workspace, name="test key"):
    issued = create_api_key(membership=membership, workspace=workspace, name=name, actor=None)
    return issued.plaintext, issued.key


def seed_prices() -> None:
    """The price rows of the data migrations (transactional tests truncate every table)."""
    from decimal import Decimal

    from usage.models import ModelPrice

    listed = importlib.import_module("usage.migrations.0002_seed_model_prices")
    one_hour = importlib.import_module("usage.migrations.0003_cache_write_1h")
    for model, (inp, out, write, read) in listed.PRICES.items():
        ModelPrice.objects.get_or_create(
            model=model,
            effective_from=listed.EFFECTIVE_FROM,
            defaults={
                "input_per_mtok": Decimal(inp),
                "output_per_mtok": Decimal(out),
                "cache_write_per_mtok": Decimal(write),
                "cache_read_per_mtok": Decimal(read),
                "cache_write_1h_per_mtok": Decimal(inp) * one_hour.ONE_HOUR_WRITE_FACTOR,
            },
        )
    pricing.invalidate()


@pytest.fixture
def gw(world, simulator, gateway) -> GatewayWorld:
    seed_prices()
    configure_upstream(
        organization=world.org, base_url=simulator.url, api_key="sk-sim-upstream-0001", actor=None
    )
    default = world.org.workspaces.get(is_default=True)
    raw, row = mint_key(world.admin, default)
    return GatewayWorld(world, gateway.url, raw, row, world.org)


def usage_event(org_id: int, n: int, **fields) -> dict:
    """A usage event as the gateway publishes it (fields override the defaults)."""
    return {
        "request_id": f"req_test_{org_id}_{n}",
        "time": time.time(),
        "organization_id": org_id,
        "workspace_id": None,
        "api_key_id": None,
        "model": MODEL,
        "status": 200,
        "input_tokens": 10,
        "output_tokens": 5,
        **fields,
    }


def events_for(organization_id: int, expected: int, timeout: float = 10.0) -> list[UsageEvent]:
    """The organization's usage events once `expected` have arrived (polling the real path:
    publisher → Redis stream → consumer), plus a last drain so an extra one would show."""
    deadline = time.monotonic() + timeout
    while True:
        publisher().flush()
        drain(consumer="tests")
        rows = list(
            UsageEvent.objects.filter(organization_id=organization_id).order_by(
                "created_at", "request_id"
            )
        )
        if len(rows) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.1)
    publisher().flush()
    drain(consumer="tests")
    return list(
        UsageEvent.objects.filter(organization_id=organization_id).order_by(
            "created_at", "request_id"
        )
    )
