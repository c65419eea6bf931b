"""The Admin's upstream settings page: key stored encrypted, shown by its last 4 only, "Test
connection" through the official SDK, workspace overrides and policies; and what the gateway makes
of them."""

from __future__ import annotations

from io import StringIO

import anthropic
import httpx
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import AuditEvent
from gateway import crypto
from gateway.models import UpstreamConfig, WorkspacePolicy
from gateway.services import configure_upstream

from .conftest import MODEL, events_for, mint_key, seed_prices
from .servers import serve_in_thread

SECRET = "sk-ant-api03-supersecretvalue-ABCD"


def test_admin_saves_the_upstream_key_encrypted_and_sees_only_its_last_4(world, client_for):
    client = client_for(world.admin)
    url = reverse("gateway:upstream", args=[world.org.slug])
    response = client.post(
        url,
        {"base_url": "https://api.anthropic.com", "api_key": SECRET, "timeout_seconds": 120,
         "action": "save"},
    )  # fmt: skip
    assert response.status_code == 302
    config = UpstreamConfig.objects.get(organization=world.org, workspace=None)
    assert SECRET not in config.api_key_encrypted
    assert crypto.decrypt(config.api_key_encrypted) == SECRET
    page = client.get(url).content.decode()
    assert "…ABCD" in page and SECRET not in page and SECRET[:-4] not in page
    event = AuditEvent.objects.get(action="gateway.upstream_changed")
    assert SECRET not in str(event.after) and event.after["key"] == "…ABCD"


def test_saving_without_a_key_keeps_the_stored_one(world, client_for):
    configure_upstream(organization=world.org, base_url="https://a.example", api_key=SECRET,
                       actor=None)  # fmt: skip
    client_for(world.admin).post(
        reverse("gateway:upstream", args=[world.org.slug]),
        {"base_url": "https://b.example", "api_key": "", "timeout_seconds": 30, "action": "save"},
    )
    config = UpstreamConfig.objects.get(organization=world.org, workspace=None)
    assert config.base_url == "https://b.example" and config.timeout_seconds == 30
    assert crypto.decrypt(config.api_key_encrypted) == SECRET


def test_rotating_the_encryption_key_keeps_stored_keys_readable(world, settings):
    from cryptography.fernet import Fernet, InvalidToken
    from django.core.management import call_command

    old = Fernet.generate_key().decode()
    settings.UPSTREAM_KEY_ENCRYPTION_KEYS = old
    config = configure_upstream(organization=world.org, base_url="https://a.example",
                                api_key=SECRET, actor=None)  # fmt: skip
    new = Fernet.generate_key().decode()
    settings.UPSTREAM_KEY_ENCRYPTION_KEYS = f"{new},{old}"
    call_command("rotate_upstream_keys", stdout=StringIO())
    settings.UPSTREAM_KEY_ENCRYPTION_KEYS = new  # the old key is gone
    config.refresh_from_db()
    assert crypto.decrypt(config.api_key_encrypted) == SECRET
    settings.UPSTREAM_KEY_ENCRYPTION_KEYS = old
    with pytest.raises(InvalidToken):
        crypto.decrypt(config.api_key_encrypted)


def test_member_and_billing_cannot_open_upstream_settings(world, client_for):
    url = reverse("gateway:upstream", args=[world.org.slug])
    assert client_for(world.member).get(url).status_code == 403
    assert client_for(world.billing).get(url).status_code == 403
    assert client_for(world.outsider).get(url).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_test_connection_reports_success_and_refusal(world, client_for, simulator):
    client = client_for(world.admin)
    url = reverse("gateway:upstream", args=[world.org.slug])
    ok = client.post(
        url,
        {"base_url": simulator.url, "api_key": "sk-sim-x", "timeout_seconds": 10,
         "action": "test"},
        follow=True,
    )  # fmt: skip
    assert "Connected: 9 models available" in ok.content.decode()
    unreachable = client.post(
        url,
        {"base_url": "http://127.0.0.1:9", "api_key": "sk-sim-x", "timeout_seconds": 10,
         "action": "test"},
        follow=True,
    )  # fmt: skip
    assert "Connection failed: No Anthropic API answered at this address" in (
        unreachable.content.decode()
    )


@pytest.mark.django_db(transaction=True)
def test_workspace_policy_allow_list_and_ceiling_apply_at_the_gateway(
    world, client_for, simulator, gateway
):
    seed_prices()
    configure_upstream(organization=world.org, base_url=simulator.url, api_key="sk-sim-x",
                       actor=None)  # fmt: skip
    response = client_for(world.admin).post(
        reverse("gateway:workspace", args=[world.org.slug, world.workspace.pk]),
        {"action": "policy", "policy-allowed_models": "claude-haiku-4-5\nclaude-3-5-haiku",
         "policy-max_tokens_ceiling": 100},
    )  # fmt: skip
    assert response.status_code == 302
    policy = WorkspacePolicy.objects.get(workspace=world.workspace)
    assert policy.allowed_models == ["claude-3-5-haiku", "claude-haiku-4-5"]
    raw, _ = mint_key(world.member, world.workspace)
    with anthropic.Anthropic(api_key=raw, base_url=gateway.url, max_retries=0) as sdk:
        sdk.messages.create(model=MODEL, max_tokens=100,
                            messages=[{"role": "user", "content": "hi"}])  # fmt: skip
        with pytest.raises(anthropic.PermissionDeniedError) as denied:
            sdk.messages.create(model="claude-other-model", max_tokens=10,
                                messages=[{"role": "user", "content": "hi"}])  # fmt: skip
        assert "claude-other-model is not allowed in this workspace" in denied.value.message
        with pytest.raises(anthropic.BadRequestError) as too_many:
            sdk.messages.create(model=MODEL, max_tokens=101,
                                messages=[{"role": "user", "content": "hi"}])  # fmt: skip
        assert "above this workspace's limit of 100" in too_many.value.message
        listed = [m.id for m in sdk.models.list().data]
        assert listed and all(
            m.startswith(("claude-haiku-4-5", "claude-3-5-haiku")) for m in listed
        )
        assert sdk.models.retrieve("claude-haiku-4-5").id == MODEL
        with pytest.raises(anthropic.PermissionDeniedError):
            sdk.models.retrieve("claude-opus-4-1-20250805")
    statuses = sorted(e.status for e in events_for(world.org.pk, 6))
    assert statuses == [200, 200, 200, 400, 403, 403]


@pytest.mark.django_db(transaction=True)
def test_workspace_override_sends_its_keys_elsewhere(world, simulator, gateway):
    seed_prices()
    configure_upstream(organization=world.org, base_url="http://127.0.0.1:9", api_key="sk-x",
                       actor=None)  # fmt: skip
    configure_upstream(organization=world.org, workspace=world.workspace,
                       base_url=simulator.url, api_key="sk-sim-x", actor=None)  # fmt: skip
    dev_key, _ = mint_key(world.member, world.workspace)
    default_key, _ = mint_key(world.admin, world.org.workspaces.get(is_default=True))
    with anthropic.Anthropic(api_key=dev_key, base_url=gateway.url, max_retries=0) as sdk:
        assert sdk.models.list().data
    sdk = anthropic.Anthropic(api_key=default_key, base_url=gateway.url, max_retries=0)
    with sdk, pytest.raises(anthropic.InternalServerError) as failed:
        sdk.models.list()
    assert failed.value.status_code == 502


def test_page_names_the_default_upstream_when_the_org_has_none(world, client_for, settings):
    settings.GATEWAY_DEFAULT_UPSTREAM_URL = "http://127.0.0.1:9100"
    settings.GATEWAY_DEFAULT_UPSTREAM_KEY = "sk-sim-demo"
    page = client_for(world.admin).get(reverse("gateway:upstream", args=[world.org.slug]))
    assert "default upstream, <strong>http://127.0.0.1:9100</strong>" in page.content.decode()
    assert "sk-sim-demo" not in page.content.decode()
    settings.GATEWAY_DEFAULT_UPSTREAM_URL = ""
    page = client_for(world.admin).get(reverse("gateway:upstream", args=[world.org.slug]))
    assert "are refused until you save one" in page.content.decode()


def test_page_says_which_upstream_is_in_effect_and_why(world, client_for, settings):
    settings.GATEWAY_DEFAULT_UPSTREAM_URL = "http://127.0.0.1:9100"
    settings.GATEWAY_DEFAULT_UPSTREAM_KEY = "sk-sim-demo"
    client = client_for(world.admin)
    url = reverse("gateway:upstream", args=[world.org.slug])

    def in_effect() -> str:
        page = client.get(url)
        text = page.content.decode()
        start = text.index('data-testid="upstream-in-effect">')
        return " ".join(text[start : text.index("</div>", start)].split()[1:]), page

    said, page = in_effect()
    assert said.startswith("<strong>In effect:</strong> <code>http://127.0.0.1:9100</code>.")
    assert "because this organization has not saved one of its own" in said
    # The form does not pretend api.anthropic.com is in use: it is a placeholder, not a value.
    assert page.context["form"]["base_url"].value() is None
    assert 'placeholder="https://api.anthropic.com"' in page.content.decode()

    configure_upstream(organization=world.org, base_url="https://api.anthropic.com",
                       api_key=SECRET, actor=None)  # fmt: skip
    said, _ = in_effect()
    assert "<code>https://api.anthropic.com</code>" in said and "own upstream" in said

    UpstreamConfig.objects.all().delete()
    settings.GATEWAY_DEFAULT_UPSTREAM_URL = ""
    said, _ = in_effect()
    assert said.startswith("<strong>In effect:</strong> none.") and "refused" in said


class NotTheAnthropicApi:
    """An upstream answering 200 with something else: a login page, or JSON of another shape."""

    def __init__(self) -> None:
        self.html = True

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        if self.html:
            body, content_type = b"<html>Sign in</html>", b"text/html"
        else:
            body, content_type = b'{"unexpected": true}', b"application/json"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type)]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def not_anthropic():
    upstream = NotTheAnthropicApi()
    server = serve_in_thread(upstream, lifespan="off")
    yield upstream, server.url
    server.stop()


@pytest.mark.parametrize("html", [True, False])
def test_test_connection_says_when_the_upstream_is_not_the_anthropic_api(
    world, client_for, not_anthropic, html
):
    upstream, url = not_anthropic
    upstream.html = html
    response = client_for(world.admin).post(
        reverse("gateway:upstream", args=[world.org.slug]),
        {"base_url": url, "api_key": "sk-x", "timeout_seconds": 5, "action": "test"},
        follow=True,
    )
    assert response.status_code == 200
    assert (
        "Connection failed: No Anthropic API answered at this address" in response.content.decode()
    )


@pytest.mark.parametrize("api_key", ["sk-ключ", "sk-ant key", "sk-\x7f", "sk-\u00a0x"])
def test_an_upstream_key_is_printable_ascii_without_spaces(world, client_for, api_key):
    response = client_for(world.admin).post(
        reverse("gateway:upstream", args=[world.org.slug]),
        {"base_url": "https://api.anthropic.com", "api_key": api_key, "timeout_seconds": 5,
         "action": "save"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "only printable ASCII characters and no spaces" in " ".join(
        response.context["form"].errors["api_key"]
    )
    assert not UpstreamConfig.objects.exists()
    with pytest.raises(ValidationError, match="printable ASCII"):
        configure_upstream(organization=world.org, base_url="https://a.example",
                           api_key=api_key, actor=None)  # fmt: skip


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://api.example.com",
        "https://user:secret@api.example.com",
        "https://api.example.com/v1?beta=true",
        "https://api.example.com/?",
        "https://api.example.com/#top",
        "https://api.example.com:99999",
        "https://api.exämple.com",
        "https://api.example.com/pä th",
    ],
)
def test_an_upstream_base_url_is_an_https_origin_only(world, client_for, base_url):
    response = client_for(world.admin).post(
        reverse("gateway:upstream", args=[world.org.slug]),
        {"base_url": base_url, "api_key": SECRET, "timeout_seconds": 5, "action": "save"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["base_url"]
    assert not UpstreamConfig.objects.exists()
    with pytest.raises(ValidationError):
        configure_upstream(organization=world.org, base_url=base_url, api_key=SECRET,
                           actor=None)  # fmt: skip


def test_an_upstream_base_url_may_have_a_port(world, client_for):
    client_for(world.admin).post(
        reverse("gateway:upstream", args=[world.org.slug]),
        {"base_url": "http://127.0.0.1:9100/", "api_key": SECRET, "timeout_seconds": 5,
         "action": "save"},
    )  # fmt: skip
    config = UpstreamConfig.objects.get(organization=world.org, workspace=None)
    assert config.base_url == "http://127.0.0.1:9100"


def test_removing_a_workspace_override_asks_first(world, client_for):
    configure_upstream(organization=world.org, workspace=world.workspace,
                       base_url="https://x.example", api_key=SECRET, actor=None)  # fmt: skip
    client = client_for(world.admin)
    page_url = reverse("gateway:workspace", args=[world.org.slug, world.workspace.pk])
    confirm_url = reverse("gateway:override_remove", args=[world.org.slug, world.workspace.pk])
    assert f'href="{confirm_url}"' in client.get(page_url).content.decode()
    # The old one-click form post no longer removes anything.
    client.post(page_url, {"action": "remove_override"})
    assert UpstreamConfig.objects.filter(workspace=world.workspace).exists()
    confirmation = client.get(confirm_url).content.decode()
    assert "Remove the upstream override of Development?" in confirmation
    assert "https://x.example" in confirmation and "…ABCD" in confirmation
    assert UpstreamConfig.objects.filter(workspace=world.workspace).exists()
    response = client.post(confirm_url, follow=True)
    assert "Development now uses the organization&#x27;s upstream." in response.content.decode()
    assert not UpstreamConfig.objects.filter(workspace=world.workspace).exists()
    assert AuditEvent.objects.filter(action="gateway.upstream_removed").count() == 1
    # A second confirmation (another tab) finds nothing to remove and says so.
    again = client.post(confirm_url, follow=True).content.decode()
    assert "Development has no upstream override: nothing to remove." in again
    assert AuditEvent.objects.filter(action="gateway.upstream_removed").count() == 1


def test_saving_an_unchanged_policy_records_nothing(world, client_for):
    client = client_for(world.admin)
    url = reverse("gateway:workspace", args=[world.org.slug, world.workspace.pk])

    def save(models, ceiling):
        return client.post(
            url,
            {"action": "policy", "policy-allowed_models": models,
             "policy-max_tokens_ceiling": ceiling},
            follow=True,
        ).content.decode()  # fmt: skip

    assert "Gateway policy of Development unchanged." in save("", "")
    assert not WorkspacePolicy.objects.exists()
    assert "Gateway policy of Development saved." in save("claude-haiku-4-5", "100")
    for _ in range(2):
        assert "unchanged" in save("claude-haiku-4-5\n", "100")  # same rules, written otherwise
    events = AuditEvent.objects.filter(action="gateway.policy_changed")
    assert events.count() == 1
    assert events.get().after == {"allowed_models": ["claude-haiku-4-5"], "max_tokens": 100}
    save("", "")
    assert events.count() == 2


def test_an_upstream_host_the_operator_has_not_allowed_is_refused(world, client_for, settings):
    settings.GATEWAY_UPSTREAM_HOSTS = ["api.anthropic.com"]
    response = client_for(world.admin).post(
        reverse("gateway:upstream", args=[world.org.slug]),
        {"base_url": "http://10.0.0.5:8080", "api_key": SECRET, "timeout_seconds": 5,
         "action": "save"},
    )  # fmt: skip
    assert (
        "This console forwards only to api.anthropic.com"
        in (response.context["form"].errors["base_url"][0])
    )
    assert not UpstreamConfig.objects.filter(organization=world.org).exists()


@pytest.mark.django_db(transaction=True)
def test_a_stored_upstream_whose_host_is_no_longer_allowed_is_not_followed(
    world, simulator, gateway, settings
):
    from gateway import routing

    configure_upstream(organization=world.org, base_url=simulator.url, api_key="sk-sim-x",
                       actor=None)  # fmt: skip
    settings.GATEWAY_UPSTREAM_HOSTS = ["api.anthropic.com"]
    settings.GATEWAY_DEFAULT_UPSTREAM_URL = ""
    routing.forget_routes()
    raw, _ = mint_key(world.admin, world.org.workspaces.get(is_default=True))
    response = httpx.get(f"{gateway.url}/v1/models", headers={"x-api-key": raw})
    assert response.status_code == 403
    assert "No usable upstream" in response.json()["error"]["message"]
