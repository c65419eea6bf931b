"""API keys through the SDK: listed with Anthropic's filters, renamed, made inactive (refused at
the gateway within a second), and created (this console's extension, the key shown once)."""

from __future__ import annotations

import time

import anthropic
import pytest

from adminapi import ids
from apikeys.keyformat import hash_key
from apikeys.models import ApiKey
from apikeys.services import create_api_key, revoke_api_key
from audit.models import AuditEvent
from tests.gateway.conftest import MODEL

pytestmark = pytest.mark.django_db(transaction=True)


def kid(key) -> str:
    return ids.encode("api_key", key.pk)


def ask(client: anthropic.Anthropic):
    return client.messages.create(
        model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
    )


def test_keys_are_listed_with_anthropics_filters(admin_api):
    world = admin_api.world
    default = world.org.workspaces.get(is_default=True)
    mine = create_api_key(membership=world.admin, workspace=default, name="ops", actor=None).key
    dev = create_api_key(
        membership=world.member, workspace=world.workspace, name="dev", actor=None
    ).key
    old = create_api_key(
        membership=world.member, workspace=world.workspace, name="old", actor=None
    ).key
    revoke_api_key(key=old, actor=None)
    with admin_api.client() as client:
        keys = client.organization.api_keys
        assert {k.name for k in keys.list()} == {"ops", "dev", "old"}
        assert [k.name for k in keys.list(status="inactive")] == ["old"]
        assert {k.name for k in keys.list(status="active")} == {"ops", "dev"}
        assert keys.list(status="archived").data == []
        in_dev = keys.list(workspace_id=ids.encode("workspace", world.workspace.pk))
        assert {k.name for k in in_dev} == {"dev", "old"}
        by_member = keys.list(created_by_user_id=ids.encode("user", world.member.user_id))
        assert {k.name for k in by_member} == {"dev", "old"}
        found = keys.retrieve(kid(dev))
    assert found.status == "active" and found.type == "api_key"
    assert found.partial_key_hint == dev.display
    assert found.scope.type == "workspace"
    assert found.scope.workspace_id == ids.encode("workspace", world.workspace.pk)
    assert found.created_by.id == ids.encode("user", world.member.user_id)
    assert mine.workspace == default


def test_an_inactive_key_is_refused_at_the_gateway_within_a_second(admin_api, gw):
    with gw.client() as developer:
        assert ask(developer).type == "message"
        with admin_api.client() as admin:
            renamed = admin.organization.api_keys.update(kid(gw.key_row), name="retired")
            assert renamed.name == "retired" and renamed.status == "active"
            inactive = admin.organization.api_keys.update(kid(gw.key_row), status="inactive")
        assert inactive.status == "inactive"
        deadline = time.monotonic() + 1.0
        while True:
            try:
                ask(developer)
            except anthropic.AuthenticationError:
                break
            assert time.monotonic() < deadline, "the key still worked a second later"
            time.sleep(0.05)
    assert ApiKey.objects.get(pk=gw.key_row.pk).revoked_at is not None
    revoked = AuditEvent.objects.get(action="apikey.revoked")
    assert "admin key Terraform" in revoked.actor_label
    assert AuditEvent.objects.filter(action="apikey.renamed").exists()


def test_an_inactive_key_stays_inactive(admin_api):
    world = admin_api.world
    key = create_api_key(membership=world.member, workspace=world.workspace, name="k", actor=None)
    revoke_api_key(key=key.key, actor=None)
    with admin_api.client() as client:
        with pytest.raises(anthropic.BadRequestError, match=r"status: .*cannot be made active"):
            client.organization.api_keys.update(kid(key.key), status="active")
        with pytest.raises(anthropic.BadRequestError, match=r"status: .*no archived keys"):
            client.organization.api_keys.update(kid(key.key), status="archived")


def test_a_key_created_through_the_api_is_shown_once_and_works_at_the_gateway(admin_api, gw):
    world = admin_api.world
    with admin_api.http() as http:
        answer = http.post(
            "/v1/organizations/api_keys",
            json={
                "name": "CI",
                "workspace_id": ids.encode("workspace", world.workspace.pk),
                "user_id": ids.encode("user", world.member.user_id),
            },
        )
    assert answer.status_code == 200, answer.text
    created = answer.json()
    raw = created["key"]
    assert raw.startswith("csk_") and created["status"] == "active"
    key = ApiKey.objects.get(pk=ids.decode("api_key", created["id"]))
    assert key.key_hash == hash_key(raw) and key.owner_id == world.member.user_id
    assert key.workspace_id == world.workspace.pk
    with admin_api.client() as client:
        assert "key" not in client.organization.api_keys.retrieve(created["id"]).model_dump()
    with gw.client(raw) as developer:
        assert ask(developer).type == "message"
    created_event = AuditEvent.objects.get(action="apikey.created", target_id=str(key.pk))
    assert "admin key Terraform" in created_event.actor_label


def test_key_creation_follows_the_console_rules(admin_api):
    world = admin_api.world
    default = ids.encode("workspace", world.org.workspaces.get(is_default=True).pk)
    billing = ids.encode("user", world.billing.user_id)
    with admin_api.http() as http:
        for body, field in (
            ({"name": "x", "user_id": billing}, "cannot hold API keys"),
            (
                {
                    "name": "x",
                    "user_id": ids.encode("user", world.member.user_id),
                    "workspace_id": default,
                },
                "workspace: Choose a workspace you belong to",
            ),
            ({"name": ""}, "name: "),
            ({"name": "x", "expires_on": "2001-01-01"}, "expires_on: "),
            ({"name": "x", "workspace_id": "wrkspc_x"}, "workspace_id: "),
        ):
            answer = http.post("/v1/organizations/api_keys", json=body)
            assert answer.status_code == 400, (body, answer.text)
            assert field in answer.json()["error"]["message"], answer.text
    assert not ApiKey.objects.exists()
