"""Upstream base URLs are origins (scheme, host, port), https except for hosts the operator lists
as local, and neither "Test connection" nor the gateway reads back a non-API answer's body or
tells an open port from a closed one."""

from __future__ import annotations

import httpx
import pytest
from django.urls import reverse

from gateway import routing
from gateway.models import UpstreamConfig
from gateway.services import configure_upstream

from .conftest import MODEL
from .servers import free_port, serve_in_thread
from .test_gateway_loops import store_upstream

SECRET_PAGE = b"<html>INTERNAL-ONLY admin console, token=hunter2</html>"


class InternalPage:
    """A server that is not the Anthropic API: whatever is asked, an internal page, with the
    status and content type a test chooses."""

    def __init__(self) -> None:
        self.status = 404
        self.content_type = b"text/html"
        self.body = SECRET_PAGE

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", self.content_type)]})  # fmt: skip
        await send({"type": "http.response.body", "body": self.body})


@pytest.fixture
def internal():
    page = InternalPage()
    server = serve_in_thread(page, lifespan="off")
    yield page, server.url
    server.stop()


def save(client, org, base_url, action="save"):
    return client.post(
        reverse("gateway:upstream", args=[org.slug]),
        {"base_url": base_url, "api_key": "sk-ant-x", "timeout_seconds": 5, "action": action},
        follow=action == "test",
    )


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8000/accounts/login",
        "https://api.anthropic.com/v1",
        "https://api.anthropic.com/anthropic/",
        "https://api.anthropic.com/%2e%2e/",
    ],
)
def test_an_upstream_base_url_with_a_path_is_refused(world, client_for, base_url):
    response = save(client_for(world.admin), world.org, base_url)
    assert response.status_code == 200
    assert "scheme, host and port only" in " ".join(response.context["form"].errors["base_url"])
    assert not UpstreamConfig.objects.exists()


def test_a_trailing_slash_is_still_an_origin(world, client_for):
    assert save(client_for(world.admin), world.org, "https://api.anthropic.com/").status_code == 302
    assert UpstreamConfig.objects.get().base_url == "https://api.anthropic.com"


def test_plain_http_is_refused_for_hosts_not_listed_as_local(world, client_for, settings):
    settings.GATEWAY_LOCAL_UPSTREAM_HOSTS = ["127.0.0.1"]
    response = save(client_for(world.admin), world.org, "http://a.example")
    assert response.status_code == 200
    assert "https://" in " ".join(response.context["form"].errors["base_url"])
    assert save(client_for(world.admin), world.org, "http://127.0.0.1:9100").status_code == 302


@pytest.mark.parametrize(
    ("status", "content_type"),
    [(404, b"text/html"), (200, b"text/html"), (500, b"text/plain"), (403, b"application/json")],
)
def test_test_connection_shows_no_body_of_a_non_api_answer(
    world, client_for, internal, status, content_type
):
    page, url = internal
    page.status, page.content_type = status, content_type
    page.body = SECRET_PAGE if content_type != b"application/json" else b'{"detail": "hunter2"}'
    response = save(client_for(world.admin), world.org, url, action="test")
    text = response.content.decode()
    assert "Connection failed" in text
    assert "hunter2" not in text and "INTERNAL-ONLY" not in text


def test_test_connection_does_not_tell_an_open_port_from_a_closed_one(world, client_for, internal):
    _, open_url = internal
    closed_url = f"http://127.0.0.1:{free_port()}"
    client = client_for(world.admin)

    def failure(url):
        text = save(client, world.org, url, action="test").content.decode()
        start = text.index("Connection failed")
        return text[start : text.index("<", start)].replace(url, "URL")

    assert failure(open_url) == failure(closed_url)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", [404, 200, 502])
def test_the_gateway_does_not_relay_a_non_api_answer(gw, internal, status):
    page, url = internal
    page.status = status
    configure_upstream(organization=gw.org, base_url=url, api_key="sk-ant-x", actor=None)
    routing.forget_routes()
    for response in (
        httpx.get(f"{gw.url}/v1/models", headers={"x-api-key": gw.key}, timeout=20),
        httpx.post(
            f"{gw.url}/v1/messages",
            headers={"x-api-key": gw.key},
            json={"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
            timeout=20,
        ),
    ):
        assert response.status_code == 502, response.text
        assert response.json()["error"]["type"] == "api_error"
        assert "hunter2" not in response.text and "INTERNAL" not in response.text


@pytest.mark.django_db(transaction=True)
def test_the_gateway_does_not_tell_an_open_port_from_a_closed_one(gw, internal):
    _, open_url = internal
    answers = []
    for url in (open_url, f"http://127.0.0.1:{free_port()}"):
        configure_upstream(organization=gw.org, base_url=url, api_key="sk-ant-x", actor=None)
        routing.forget_routes()
        response = httpx.get(f"{gw.url}/v1/models", headers={"x-api-key": gw.key}, timeout=20)
        answers.append((response.status_code, response.json()["error"]))
    assert answers[0] == answers[1]


@pytest.mark.django_db(transaction=True)
def test_a_stored_upstream_with_a_path_is_not_followed(gw, internal):
    _, url = internal
    store_upstream(gw.org, url + "/accounts/login", "sk-ant-x")
    response = httpx.get(f"{gw.url}/v1/models", headers={"x-api-key": gw.key}, timeout=20)
    assert response.status_code == 403
    assert "scheme, host and port only" in response.json()["error"]["message"]
    assert UpstreamConfig.objects.filter(organization=gw.org).exists()  # kept, to be fixed
