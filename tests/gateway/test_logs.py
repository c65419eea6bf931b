"""Logs: one line per console request and per gateway request (request id, organization, status,
latency), JSON with LOG_FORMAT=json, and no secret anywhere in the logs of a full flow: API key
material, the upstream key, invitation tokens and passwords are looked for in every record the
run produced, at DEBUG, formatted as the plain and the JSON handler write them."""

from __future__ import annotations

import json
import logging
import re

import anthropic
import pytest
from django.core import mail, signing
from django.urls import reverse

from apikeys.forms import new_form_token
from apikeys.keyformat import generate_key
from console.logformat import JsonFormatter
from members import invitation_links
from tests.factories import PASSWORD

from .conftest import MODEL, seed_prices

pytestmark = pytest.mark.django_db(transaction=True)

UPSTREAM_KEY = "sk-ant-api03-UpStReAmSeCrEt-0123456789abcdefXYZW"
SIGNUP_PASSWORD = "correct-horse-battery-staple-731"
WRONG_PASSWORD = "not-the-password-but-still-secret-55"
LINK = re.compile(r"https?://[^/\s]+(/invitations/[^/\s]+/)")


def formatted(records: list[logging.LogRecord]) -> str:
    plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    as_json = JsonFormatter()
    lines = []
    for record in records:
        lines.append(plain.format(record))
        lines.append(as_json.format(record))
    return "\n".join(lines)


def request_lines(records, logger: str) -> list[dict]:
    return [json.loads(JsonFormatter().format(r)) for r in records if r.name == logger]


def test_a_full_flow_logs_each_request_once_and_no_secret(
    client, world, simulator, gateway, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    seed_prices()
    org = world.org.slug

    # The Admin signs in with a password (a wrong one first).
    client.post(
        reverse("account_login"), {"login": "admin@example.com", "password": WRONG_PASSWORD}
    )
    response = client.post(
        reverse("account_login"), {"login": "admin@example.com", "password": PASSWORD}
    )
    assert response.status_code == 302

    # The upstream: the simulator, with a key that must never be logged.
    response = client.post(
        reverse("gateway:upstream", args=[org]),
        {"base_url": simulator.url, "api_key": UPSTREAM_KEY, "timeout_seconds": 60,
         "action": "save"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]

    # An invitation, followed by an invitee who signs up with a password.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("members:invite", args=[org]), {"email": "pat@acme.test", "role": "member"}
        )
    path = LINK.search(mail.outbox[-1].body).group(1)
    signed = path.split("/")[2]
    token = signing.loads(signed, salt=invitation_links.SALT)["t"]
    client.logout()
    response = client.get(path)
    page = client.get(response["Location"])
    client.post(
        page.context["signup_url"],
        {"email": "pat@acme.test", "password1": SIGNUP_PASSWORD,
         "password2": SIGNUP_PASSWORD, "name": "Pat"},
    )  # fmt: skip
    assert client.post(reverse("invitations:accept")).status_code == 302

    # The new member creates a key and uses it with the SDK, streaming too.
    response = client.post(
        reverse("apikeys:create", args=[org]),
        {"form_token": new_form_token(), "name": "Development",
         "workspace": world.org.workspaces.get(is_default=True).pk},
    )  # fmt: skip
    assert response.status_code == 200
    key = response.context["issued"].plaintext
    sdk = anthropic.Anthropic(api_key=key, base_url=gateway.url, max_retries=0)
    message = sdk.messages.create(
        model=MODEL, max_tokens=30, messages=[{"role": "user", "content": "hello"}]
    )
    with sdk.messages.stream(
        model=MODEL, max_tokens=30, messages=[{"role": "user", "content": "hello"}]
    ) as stream:
        stream.until_done()
    # A key that looks real but is unknown, and one sent as a bearer token.
    unknown = generate_key()
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(api_key=unknown, base_url=gateway.url, max_retries=0).models.list()
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(
            auth_token=key[:-3] + "xyz", base_url=gateway.url, max_retries=0
        ).models.list()

    records = list(caplog.records)
    text = formatted(records)

    # One line per gateway request, with the request id the client saw.
    lines = request_lines(records, "gateway.requests")
    assert [(line["path"], line["status"]) for line in lines] == [
        ("/v1/messages", 200), ("/v1/messages", 200), ("/v1/models", 401), ("/v1/models", 401),
    ]  # fmt: skip
    assert lines[0]["request_id"] == message._request_id or lines[0]["request_id"].startswith(
        "req_gw_"
    )
    assert lines[0]["organization_id"] == world.org.pk and lines[0]["model"] == MODEL
    assert lines[1]["stream"] is True and lines[0]["latency_ms"] > 0
    assert lines[2]["organization_id"] is None and lines[2]["api_key_id"] is None
    # One line per console request, with the organization of org pages.
    console = request_lines(records, "console.requests")
    assert any(
        line["path"] == f"/o/{org}/api-keys/new/" and line["organization"] == org
        and line["status"] == 200 and line["user_id"]
        for line in console
    ), console  # fmt: skip
    assert any(line["path"].startswith("/invitations/[token]") for line in console)
    assert all(line["request_id"].startswith("req_c_") for line in console)

    # No secret: key material (any 12 characters of it in a row), the upstream key, the
    # invitation link's token (signed and inner), the passwords.
    pieces = {
        "API key": key[4:], "unknown key": unknown[4:], "upstream key": UPSTREAM_KEY[14:],
        "signed invitation": signed, "invitation token": token,
    }  # fmt: skip
    leaked = {
        name for name, secret in pieces.items()
        if any(secret[i : i + 12] in text for i in range(len(secret) - 11))
    }  # fmt: skip
    leaked |= {
        name for name, password in
        {"password": PASSWORD, "signup": SIGNUP_PASSWORD, "wrong": WRONG_PASSWORD}.items()
        if password in text
    }  # fmt: skip
    assert not leaked, leaked
    assert len(records) > 20  # the scan read a real run's logs


def test_log_format_json_writes_one_object_per_line(tmp_path):
    """LOG_FORMAT=json configures the handler (a process of its own: settings read once)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = (
        "import django, logging; django.setup();"
        "logging.getLogger('gateway.requests').info('request x', extra={'fields': {'status': 200}});"
        "logging.getLogger('console').warning('plain words')"
    )
    env = {**os.environ, "LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )
    lines = [json.loads(line) for line in result.stderr.strip().splitlines()]
    assert lines[-2]["logger"] == "gateway.requests" and lines[-2]["status"] == 200
    assert lines[-1] == {**lines[-1], "level": "WARNING", "message": "plain words"}
    env["LOG_FORMAT"] = "yaml"
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=root, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "LOG_FORMAT must be plain or json." in result.stderr
