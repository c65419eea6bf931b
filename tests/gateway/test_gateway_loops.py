"""The gateway never calls itself: what it forwards carries a hop header, a request that arrives
with one is refused, and an upstream that is this console (its own address, or a console key as
the upstream key) is refused when saved and when a request would follow it."""

from __future__ import annotations

import httpx
import pytest
from django.urls import reverse

from apikeys.keyformat import PREFIX as KEY_PREFIX
from gateway import app as gateway_app
from gateway import routing
from gateway.models import UpstreamConfig
from gateway.services import configure_upstream

from .conftest import MODEL
from .test_upstream_requests import recorded  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

CONSOLE_KEY = KEY_PREFIX + "A" * 49
HOP_HEADER = "console-hop"  # what the gateway adds to every request it forwards


def ask(gw, path="/v1/messages", **headers):
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": gw.key, **headers}
    if path.startswith("/v1/models"):
        return httpx.get(f"{gw.url}{path}", headers=headers, timeout=20)
    return httpx.post(f"{gw.url}{path}", json=body, headers=headers, timeout=20)


def test_what_the_gateway_forwards_carries_the_hop_header(recorded):  # noqa: F811
    gw, upstream = recorded
    assert ask(gw).status_code == 200
    [seen] = upstream.seen
    assert seen["headers"][HOP_HEADER] == b"1"


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens", "/v1/models"])
def test_a_request_that_arrives_with_the_hop_header_is_refused(recorded, path):  # noqa: F811
    gw, upstream = recorded
    response = ask(gw, path, **{HOP_HEADER: "1"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "console" in error["message"] and "upstream" in error["message"]
    assert upstream.seen == []


def store_upstream(org, base_url: str, api_key: str) -> None:
    """An upstream saved before these checks existed (or behind the services' back)."""
    from gateway import crypto

    UpstreamConfig.objects.update_or_create(
        organization=org,
        workspace=None,
        defaults={
            "base_url": base_url,
            "api_key_encrypted": crypto.encrypt(api_key),
            "api_key_last4": api_key[-4:],
        },
    )
    routing.forget_routes()


def test_a_stored_upstream_pointing_at_this_console_is_refused_at_request_time(gw):
    store_upstream(gw.org, gw.url, "sk-ant-api03-not-a-console-key")
    before = dict(gateway_app.stats)
    response = ask(gw, "/v1/models")
    assert response.status_code == 403, response.text
    assert "this console's own address" in response.json()["error"]["message"]
    # Nothing was forwarded: the console did not receive its own request.
    assert gateway_app.stats["key_malformed"] == before.get("key_malformed", 0)


def test_a_stored_upstream_with_a_console_key_is_refused_at_request_time(gw, simulator):
    store_upstream(gw.org, simulator.url, CONSOLE_KEY)
    response = ask(gw)
    assert response.status_code == 403, response.text
    assert "console key" in response.json()["error"]["message"]


@pytest.fixture
def own_host_settings(settings):
    settings.ALLOWED_HOSTS = ["console.example.com", "127.0.0.1", "localhost", "testserver"]
    settings.GATEWAY_UPSTREAM_HOSTS = ["*"]
    settings.GATEWAY_LOCAL_UPSTREAM_HOSTS = ["127.0.0.1", "localhost"]
    settings.CONSOLE_BASE_URL = "https://console.example.com"
    return settings


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8123",  # the address this page was served from
        "http://localhost:8123",  # the same, by another name
        "https://console.example.com",  # CONSOLE_BASE_URL
        "https://console.example.com:443",
    ],
)
def test_an_upstream_pointing_at_this_console_is_refused_at_save(
    world, client, own_host_settings, base_url
):
    client.force_login(world.admin.user)
    response = client.post(
        reverse("gateway:upstream", args=[world.org.slug]),
        {"base_url": base_url, "api_key": "sk-ant-x", "timeout_seconds": 5, "action": "save"},
        HTTP_HOST="127.0.0.1:8123",
        SERVER_PORT="8123",
    )
    assert response.status_code == 200
    assert "this console's own address" in " ".join(response.context["form"].errors["base_url"])
    assert not UpstreamConfig.objects.exists()


def test_another_port_of_the_same_host_is_not_this_console(world, client, own_host_settings):
    client.force_login(world.admin.user)
    response = client.post(
        reverse("gateway:upstream", args=[world.org.slug]),
        {"base_url": "http://127.0.0.1:9100", "api_key": "sk-ant-x", "timeout_seconds": 5,
         "action": "save"},
        HTTP_HOST="127.0.0.1:8123",
        SERVER_PORT="8123",
    )  # fmt: skip
    assert response.status_code == 302
    assert UpstreamConfig.objects.get().base_url == "http://127.0.0.1:9100"


def test_a_console_key_as_the_upstream_key_is_refused_at_save(world, client_for):
    response = client_for(world.admin).post(
        reverse("gateway:upstream", args=[world.org.slug]),
        {"base_url": "https://api.anthropic.com", "api_key": CONSOLE_KEY, "timeout_seconds": 5,
         "action": "save"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "console key" in " ".join(response.context["form"].errors["api_key"])
    assert not UpstreamConfig.objects.exists()
    with pytest.raises(Exception, match="console key"):
        configure_upstream(organization=world.org, base_url="https://api.anthropic.com",
                           api_key=CONSOLE_KEY, actor=None)  # fmt: skip
