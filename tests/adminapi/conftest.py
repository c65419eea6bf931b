"""The Admin API served for real: console.asgi under uvicorn in a thread (the gateway tests'
servers), an admin key of the world's Admin, and the official SDK pointed at it."""

from __future__ import annotations

import gc
from dataclasses import dataclass

import anthropic
import httpx
import pytest

from apikeys.services import create_admin_key
from tests.gateway import conftest as gateway_fixtures

# The gateway's fixtures: the live console (and simulator), its Redis namespace per test.
gateway = gateway_fixtures.gateway
simulator = gateway_fixtures.simulator
gw = gateway_fixtures.gw
_fresh_gateway_caches = gateway_fixtures._fresh_gateway_caches


@pytest.fixture(scope="session")
def _request_connections_closed(django_db_setup):
    """The Admin API's threads keep their database connections (CONN_MAX_AGE): stop them
    before the test database is dropped."""
    yield
    from adminapi.asgi import shutdown

    shutdown()
    gc.collect()


@dataclass
class AdminApi:
    world: object
    url: str
    key: str  # the Admin's admin key
    key_row: object

    def client(self, key: str | None = None, **options) -> anthropic.Anthropic:
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 30)
        return anthropic.Anthropic(api_key=key or self.key, base_url=self.url, **options)

    def http(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": key or self.key}, timeout=30)


@pytest.fixture
def admin_api(world, gateway, _request_connections_closed) -> AdminApi:
    issued = create_admin_key(membership=world.admin, name="Terraform", actor=None)
    return AdminApi(world, gateway.url, issued.plaintext, issued.key)


@pytest.fixture
def outsider_key(world) -> str:
    return create_admin_key(membership=world.outsider, name="Globex ops", actor=None).plaintext
