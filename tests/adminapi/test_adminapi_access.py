"""Every route of the Admin API's registry × the keys that may not use it: none, a console API
key, a revoked admin key, an admin key whose owner is no longer an Admin (refused), and an
outsider's admin key on this organization's objects (not found, nothing changed). Routes come
from adminapi.api.ENDPOINTS, so a new endpoint is covered by construction: it needs an object
for each id in its path (IDS) and, if it takes a body, a valid body (BODIES)."""

from __future__ import annotations

import httpx
import pytest

from adminapi import ids
from adminapi.api import ENDPOINTS
from apikeys.services import create_admin_key, create_api_key, revoke_admin_key
from audit.models import AuditEvent
from billing.models import SpendLimitIncreaseRequest
from members.models import Invitation, Role

pytestmark = pytest.mark.django_db(transaction=True)

SERVED = [item for item in ENDPOINTS if item.served]
ROUTES = [pytest.param(item, id=f"{item.method} {item.path}") for item in SERVED]

BODIES = {
    "update_user": lambda o: {"role": "billing"},
    "create_invite": lambda o: {"email": "someone@example.com", "role": "developer"},
    "create_workspace": lambda o: {"name": "Research"},
    "update_workspace": lambda o: {"name": "Renamed"},
    "add_workspace_member": lambda o: {
        "user_id": o["user"],
        "workspace_role": "workspace_developer",
    },
    "update_workspace_member": lambda o: {"workspace_role": "workspace_developer"},
    "update_api_key": lambda o: {"name": "Renamed"},
    "create_api_key": lambda o: {"name": "CI"},
    "approve_increase_request": lambda o: {"amount": "2000"},
    "deny_increase_request": lambda o: {},
}


def objects_of(world) -> dict[str, str]:
    """An id of `world.org` for each kind a path names."""
    invitation = Invitation.objects.create(
        organization=world.org, email="invitee@example.com", role=Role.MEMBER, token_hash="1" * 64
    )
    key = create_api_key(
        membership=world.member, workspace=world.workspace, name="dev", actor=None
    ).key
    increase = SpendLimitIncreaseRequest.objects.create(
        organization=world.org,
        requested_by=world.member.user,
        scope="workspace",
        workspace=world.workspace,
        requested_cap_micros=20_000_000,
    )
    return {
        "increase_request": ids.encode("increase_request", increase.pk),
        "api_key": ids.encode("api_key", key.pk),
        "user": ids.encode("user", world.member.user_id),
        "invite": ids.encode("invite", invitation.pk),
        "workspace": ids.encode("workspace", world.workspace.pk),
    }


def url_of(item, objects) -> str:
    path = item.path
    for name, kind in item.path_ids.items():
        path = path.replace("{" + name + "}", objects[kind])
    return path


def call(base_url: str, item, objects, key: str | None) -> httpx.Response:
    headers = {"x-api-key": key} if key else {}
    body = None
    if item.body is not None:
        if item.operation_id not in BODIES:
            pytest.fail(f"Add a valid body for {item.operation_id} to BODIES")
        body = BODIES[item.operation_id](objects)
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        return client.request(item.method, url_of(item, objects), json=body)


@pytest.mark.parametrize("item", ROUTES)
def test_a_route_refuses_requests_without_a_valid_admin_key(admin_api, item):
    world = admin_api.world
    objects = objects_of(world)
    console_key = create_api_key(
        membership=world.admin, workspace=world.workspace, name="k", actor=None
    ).plaintext
    revoked = create_admin_key(membership=world.admin, name="old", actor=None)
    revoke_admin_key(key=revoked.key, actor=None)
    events = AuditEvent.objects.count()
    for key in (None, console_key, revoked.plaintext, "cak_" + "x" * 49):
        answer = call(admin_api.url, item, objects, key)
        assert answer.status_code == 401, (key, answer.text)
        assert answer.json()["error"]["type"] == "authentication_error"
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("item", ROUTES)
def test_a_route_refuses_an_admin_key_whose_owner_is_no_longer_admin(admin_api, item):
    world = admin_api.world
    second = create_admin_key(membership=world.admin, name="second", actor=None).plaintext
    world.admin.role = Role.MEMBER  # demoted behind the services' back: no revocation ran
    world.admin.save()
    answer = call(admin_api.url, item, objects_of(world), second)
    assert answer.status_code == 403 and answer.json()["error"]["type"] == "permission_error"


@pytest.mark.parametrize("item", [r for r in ROUTES if r.values[0].path_ids])
def test_an_outsiders_admin_key_finds_no_object_of_this_organization(admin_api, outsider_key, item):
    objects = objects_of(admin_api.world)
    events = AuditEvent.objects.count()
    answer = call(admin_api.url, item, objects, outsider_key)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["type"] == "not_found_error"
    assert AuditEvent.objects.count() == events
