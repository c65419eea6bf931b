"""The official SDK's `client.organization` against the console: the organization, its users
and invites, with Anthropic's roles mapped onto ours and every change made by the same
services as in the browser."""

from __future__ import annotations

import anthropic
import pytest
from django.core import mail

from adminapi import ids
from apikeys.models import ApiKey
from apikeys.services import create_api_key, revoke_admin_key
from audit.models import AuditEvent
from members.models import Invitation, InvitationStatus, Membership, Role
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def user_id(membership) -> str:
    return ids.encode("user", membership.user_id)


def test_retrieve_names_the_organization_of_the_admin_key(admin_api):
    with admin_api.client() as client:
        me = client.organization.retrieve()
    assert me.type == "organization" and me.name == "Acme Support"
    assert me.id.startswith("org_")


def test_users_are_listed_with_anthropics_role_names_and_filtered(admin_api):
    world = admin_api.world
    with admin_api.client() as client:
        users = {u.email: u for u in client.organization.users.list()}
        assert {u: users[u].role for u in users} == {
            "admin@example.com": "admin",
            "dev@example.com": "developer",
            "finance@example.com": "billing",
        }
        assert users["dev@example.com"].id == user_id(world.member)
        assert users["dev@example.com"].type == "user"
        only = client.organization.users.list(email="FINANCE@example.com").data
        assert [u.email for u in only] == ["finance@example.com"]
        devs = client.organization.users.list(roles=["developer", "billing"]).data
        assert sorted(u.email for u in devs) == ["dev@example.com", "finance@example.com"]
        found = client.organization.users.retrieve(user_id(world.member))
    assert found.email == "dev@example.com" and found.role == "developer"


def test_a_role_change_goes_through_the_members_service_and_names_the_admin_key(admin_api):
    world = admin_api.world
    with admin_api.client() as client:
        changed = client.organization.users.update(user_id(world.member), role="billing")
    assert changed.role == "billing"
    world.member.refresh_from_db()
    assert world.member.role == Role.BILLING
    event = AuditEvent.objects.get(action="member.role_changed")
    assert event.actor_id == world.admin.user_id
    assert "admin key Terraform" in event.actor_label
    assert event.before == {"role": "member"} and event.after == {"role": "billing"}


def test_the_last_admin_is_neither_demoted_nor_removed(admin_api):
    world = admin_api.world
    with admin_api.client() as client:
        with pytest.raises(anthropic.BadRequestError, match="at least one Admin"):
            client.organization.users.update(user_id(world.admin), role="developer")
        with pytest.raises(anthropic.BadRequestError, match="at least one Admin"):
            client.organization.users.remove(user_id(world.admin))
    assert Membership.objects.get(pk=world.admin.pk).role == Role.ADMIN


def test_removing_a_user_ends_their_membership_and_revokes_their_keys(admin_api):
    world = admin_api.world
    key = create_api_key(
        membership=world.member, workspace=world.workspace, name="dev", actor=None
    ).key
    with admin_api.client() as client:
        removed = client.organization.users.remove(user_id(world.member))
        assert removed.type == "user_deleted" and removed.id == user_id(world.member)
        with pytest.raises(anthropic.NotFoundError):
            client.organization.users.retrieve(user_id(world.member))
    assert not Membership.objects.filter(pk=world.member.pk).exists()
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert AuditEvent.objects.filter(action="member.removed").exists()


@pytest.mark.parametrize("role", ["user", "claude_code_user", "managed", "owner"])
def test_roles_this_console_lacks_are_refused_naming_its_roles(admin_api, role):
    world = admin_api.world
    with admin_api.client() as client:
        with pytest.raises(anthropic.BadRequestError) as refused:
            client.organization.users.update(user_id(world.member), role=role)
        with pytest.raises(anthropic.BadRequestError) as refused_invite:
            client.organization.invites.create(email="new@example.com", role=role)
    for error in (refused.value, refused_invite.value):
        message = error.body["error"]["message"]
        assert message.startswith("role: ")
        assert "admin (Admin), developer (Member) or billing (Billing-only)" in message
    assert Membership.objects.get(pk=world.member.pk).role == Role.MEMBER
    assert not Invitation.objects.filter(email="new@example.com").exists()


def test_auto_pagination_walks_every_user(admin_api):
    org = admin_api.world.org
    org.member_limit = 1000
    org.save()
    for n in range(250):
        MembershipFactory(
            organization=org, role=Role.MEMBER, user=UserFactory(email=f"u{n:03}@example.com")
        )
    with admin_api.client() as client:
        first = client.organization.users.list(limit=100)
        assert len(first.data) == 100 and first.has_more
        emails = [u.email for u in client.organization.users.list(limit=100)]
        back = client.organization.users.list(limit=10, before_id=first.last_id)
    assert len(emails) == 253 and len(set(emails)) == 253
    assert [u.id for u in back.data] == [u.id for u in first.data[89:99]]


def test_invites_are_created_listed_retrieved_and_deleted(admin_api):
    world = admin_api.world
    with admin_api.client() as client:
        invite = client.organization.invites.create(email="New.Dev@example.com", role="developer")
        assert invite.status == "pending" and invite.role == "developer"
        assert invite.email == "new.dev@example.com" and invite.id.startswith("invite_")
        client.organization.invites.create(email="cfo@example.com", role="billing")
        listed = client.organization.invites.list(roles=["developer"], statuses=["pending"])
        assert [i.email for i in listed.data] == ["new.dev@example.com"]
        assert client.organization.invites.retrieve(invite.id).email == "new.dev@example.com"
        deleted = client.organization.invites.delete(invite.id)
        assert deleted.type == "invite_deleted" and deleted.id == invite.id
        with pytest.raises(anthropic.NotFoundError):
            client.organization.invites.retrieve(invite.id)
        assert [i.email for i in client.organization.invites.list()] == ["cfo@example.com"]
    invitation = Invitation.objects.get(email="new.dev@example.com")
    assert invitation.status == InvitationStatus.REVOKED and invitation.role == Role.MEMBER
    assert {m.to[0] for m in mail.outbox} >= {"new.dev@example.com", "cfo@example.com"}
    invited = AuditEvent.objects.filter(action="member.invited").first()
    assert "admin key Terraform" in invited.actor_label
    assert world.org.invitations.count() == 2


def test_an_invite_past_the_member_limit_is_refused(admin_api):
    org = admin_api.world.org
    org.member_limit = 3
    org.save()
    with (
        admin_api.client() as client,
        pytest.raises(anthropic.BadRequestError, match="member limit"),
    ):
        client.organization.invites.create(email="one@example.com", role="developer")
    assert not Invitation.objects.exists()


def test_an_outsiders_admin_key_finds_nothing_of_this_organization(admin_api, outsider_key):
    world = admin_api.world
    with admin_api.client(outsider_key) as client:
        assert client.organization.retrieve().name == "Globex"
        assert [u.email for u in client.organization.users.list()] == ["outsider@globex.test"]
        with pytest.raises(anthropic.NotFoundError):
            client.organization.users.retrieve(user_id(world.member))
        with pytest.raises(anthropic.NotFoundError):
            client.organization.users.update(user_id(world.member), role="billing")
        with pytest.raises(anthropic.NotFoundError):
            client.organization.users.remove(user_id(world.member))
    assert Membership.objects.get(pk=world.member.pk).role == Role.MEMBER


def test_a_revoked_admin_key_is_refused_from_the_next_request(admin_api):
    with admin_api.client() as client:
        client.organization.users.list()
        revoke_admin_key(key=admin_api.key_row, actor=None)
        with pytest.raises(anthropic.AuthenticationError, match="revoked"):
            client.organization.users.list()


def test_keys_of_the_wrong_kind_or_none_are_refused_in_anthropics_shape(admin_api):
    world = admin_api.world
    console_key = create_api_key(
        membership=world.admin, workspace=world.workspace, name="k", actor=None
    ).plaintext
    with (
        admin_api.client(console_key) as client,
        pytest.raises(anthropic.AuthenticationError, match="This is an API key"),
    ):
        client.organization.users.list()
    with admin_api.http() as http:
        answer = http.get("/v1/organizations/users", headers={"x-api-key": ""})
        assert answer.status_code == 401
        assert answer.json()["type"] == "error"
        assert answer.json()["error"]["type"] == "authentication_error"
        assert http.get("/v1/organizations/nothing-here").json()["error"]["type"] == (
            "not_found_error"
        )
        assert (
            http.get("/v1/organizations/nothing-here", headers={"x-api-key": ""}).status_code == 401
        )


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/organizations/users?limit=0", "limit"),
        ("/v1/organizations/users?limit=1001", "limit"),
        ("/v1/organizations/users?limit=ten", "limit"),
        ("/v1/organizations/users?roles[]=owner", "roles[0]"),
        ("/v1/organizations/users?after_id=user_nope", "after_id"),
        ("/v1/organizations/users?after_id=wrkspc_5cIYbwBqcTj6LRHq81qUsp", "after_id"),
        ("/v1/organizations/users/user_1cvQQ7NobpWvtNgcXkFx8x", "user_id"),
        ("/v1/organizations/users/42", "user_id"),
        ("/v1/organizations/invites?statuses[]=deleted", "statuses[0]"),
    ],
)
def test_bad_input_is_an_invalid_request_naming_the_field(admin_api, path, field):
    with admin_api.http() as http:
        answer = http.get(path)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(f"{field}: ")


def test_bad_bodies_are_invalid_requests_naming_the_field(admin_api):
    member = user_id(admin_api.world.member)
    with admin_api.http() as http:
        not_json = http.post(f"/v1/organizations/users/{member}", content=b"{role")
        extra = http.post(f"/v1/organizations/users/{member}", json={"role": "billing", "x": 1})
        missing = http.post("/v1/organizations/invites", json={"role": "billing"})
        bad_email = http.post("/v1/organizations/invites", json={"email": "no", "role": "billing"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    assert extra.json()["error"]["message"].startswith("x: ")
    assert missing.json()["error"]["message"].startswith("email: ")
    assert bad_email.status_code == 400
    assert bad_email.json()["error"]["message"].startswith("email: ")
