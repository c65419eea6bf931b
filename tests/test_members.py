"""The members page, roles, workspace access, removal and leaving: the guide's "Managing Team
Members", done by Admins."""

import pytest
from allauth.mfa.models import Authenticator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apikeys import services as key_services
from apikeys.verification import Failure, verify_key
from audit.models import AuditEvent
from members import services
from members.models import Membership, Role, User, WorkspaceMembership
from members.services import member_removing
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def members_url(world, name="members:list", *args):
    return reverse(name, args=[world.org.slug, *args])


def export_text(response) -> str:
    chunks = response.streaming_content if response.streaming else [response.content]
    return b"".join(chunks).decode()


# The members page -----------------------------------------------------------------------------


def test_members_page_shows_name_email_role_workspaces_joined_last_login_and_mfa(client_for, world):
    Authenticator.objects.create(user=world.member.user, type=Authenticator.Type.TOTP, data={})
    # Recovery codes alone are not a second factor.
    Authenticator.objects.create(
        user=world.billing.user, type=Authenticator.Type.RECOVERY_CODES, data={}
    )
    client = client_for(world.admin)
    response = client.get(members_url(world))
    assert response.status_code == 200
    table = response.context["table"]
    headers = [column.header for column in table.columns]
    assert headers[:7] == [
        "Name", "Email", "Role", "Workspaces", "Joined", "Last login", "MFA",
    ]  # fmt: skip
    rows = {row.record.user.email: row for row in table.rows}
    assert rows["admin@example.com"].get_cell("workspaces") == "All workspaces"
    assert rows["dev@example.com"].get_cell("workspaces") == "Development"
    assert rows["dev@example.com"].get_cell("role") == "Member"
    assert rows["dev@example.com"].get_cell("mfa_enabled") == "On"
    assert rows["finance@example.com"].get_cell("mfa_enabled") == "Off"
    assert rows["finance@example.com"].get_cell("role") == "Billing-only"
    # Nothing of another organization.
    assert "outsider@globex.test" not in response.content.decode()


def test_members_page_filters_by_role_and_text_and_sorts(client_for, world):
    client = client_for(world.admin)
    emails = lambda response: [r.record.user.email for r in response.context["table"].rows]  # noqa: E731
    assert emails(client.get(members_url(world), {"role": "billing"})) == ["finance@example.com"]
    assert emails(client.get(members_url(world), {"q": "DEV@"})) == ["dev@example.com"]
    assert emails(client.get(members_url(world), {"sort": "-email"})) == [
        "finance@example.com", "dev@example.com", "admin@example.com",
    ]  # fmt: skip
    assert emails(client.get(members_url(world), {"sort": "mfa_enabled"}))


def test_members_page_htmx_swaps_only_the_table(client_for, world):
    client = client_for(world.admin)
    response = client.get(
        members_url(world),
        {"role": "admin"},
        headers={"HX-Request": "true", "HX-Target": "table-region"},
    )
    text = response.content.decode()
    assert text.lstrip().startswith('<div id="table-region"')
    assert "admin@example.com" in text and "dev@example.com" not in text


def test_members_csv_export_has_what_is_filtered_with_every_column(client_for, world):
    client = client_for(world.admin)
    response = client.get(members_url(world), {"role": "member", "_export": "csv"})
    lines = export_text(response).splitlines()
    assert lines[0] == "Name,Email,Role,Workspaces,Joined,Last login,MFA"
    assert len(lines) == 2 and "dev@example.com" in lines[1] and "Development" in lines[1]


@pytest.mark.parametrize(
    "name", ["members:list", "members:invitations", "apikeys:list", "workspaces"]
)
def test_the_text_filter_is_a_search_field_so_typing_filters_live(client_for, world, name):
    page = client_for(world.admin).get(members_url(world, name)).content.decode()
    assert "from:input[type=search]" in page  # partials/filter_form.html
    assert '<input type="search" name="q"' in page


@pytest.mark.parametrize("name", ["=1+2", "+1", "-1+2", "@SUM(A1)", "\tx"])
def test_csv_exports_do_not_start_a_cell_with_a_formula(client_for, world, name):
    world.member.user.name = name
    world.member.user.save()
    response = client_for(world.admin).get(members_url(world), {"_export": "csv", "q": "dev@"})
    assert export_text(response).splitlines()[1].startswith(f"'{name},dev@example.com,")


def _add_members(org, count: int, workspace, *, start: int = 0) -> None:
    """`count` members in bulk, each in `workspace`, half with a second factor."""
    users = User.objects.bulk_create(
        User(email=f"bulk-{i}@example.com", name=f"Bulk {i}") for i in range(start, start + count)
    )
    memberships = Membership.objects.bulk_create(
        Membership(organization=org, user=user, role=Role.MEMBER) for user in users
    )
    WorkspaceMembership.objects.bulk_create(
        WorkspaceMembership(membership=m, workspace=workspace) for m in memberships
    )
    Authenticator.objects.bulk_create(
        Authenticator(user=user, type=Authenticator.Type.TOTP, data={}) for user in users[::2]
    )


def _queries_for_members_page(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, {"sort": "email"})
    assert response.status_code == 200
    return len(queries)


def test_members_page_query_count_is_the_same_with_5_and_500_members(client_for, world):
    client = client_for(world.admin)
    url = members_url(world)
    _add_members(world.org, 2, world.workspace)  # 3 + 2 = 5 members
    assert Membership.objects.filter(organization=world.org).count() == 5
    client.get(url)  # warm the session and content-type caches
    with_5 = _queries_for_members_page(client, url)
    _add_members(world.org, 495, world.workspace, start=2)
    assert Membership.objects.filter(organization=world.org).count() == 500
    with_500 = _queries_for_members_page(client, url)
    assert with_5 == with_500, f"{with_5} queries with 5 members, {with_500} with 500"
    # Exports too: one query for the rows, one for their workspaces, however many rows.
    with CaptureQueriesContext(connection) as small:
        client.get(url, {"_export": "csv", "role": "admin"})
    with CaptureQueriesContext(connection) as large:
        client.get(url, {"_export": "csv"})
    assert len(small) == len(large)


def test_invitations_tab_query_count_does_not_grow_with_rows(client_for, world):
    client = client_for(world.admin)
    url = members_url(world, "members:invitations")

    def invite(n, start):
        for i in range(start, start + n):
            services.invite_member(
                organization=world.org, email=f"p{i}@acme.test", role=Role.MEMBER,
                workspaces=[world.workspace], actor=world.admin.user,
            )  # fmt: skip

    invite(2, 0)
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    invite(30, 2)
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(few) == len(many)


# Changing roles -------------------------------------------------------------------------------


def test_admin_changes_a_members_role(client_for, world):
    client = client_for(world.admin)
    url = members_url(world, "members:role", world.member.pk)
    assert client.get(url).status_code == 200
    response = client.post(url, {"role": "billing"})
    assert response.status_code == 302
    world.member.refresh_from_db()
    assert world.member.role == Role.BILLING
    event = AuditEvent.objects.get(action="member.role_changed")
    assert event.before == {"role": "member"} and event.after == {"role": "billing"}
    assert event.actor == world.admin.user


@pytest.mark.parametrize("role", ["owner", "", "Admin", "billing-only"])
def test_a_role_outside_the_three_is_refused(client_for, world, role):
    client = client_for(world.admin)
    response = client.post(members_url(world, "members:role", world.member.pk), {"role": role})
    assert response.status_code == 200
    assert "Choose Admin, Member or Billing-only." in str(response.context["form"].errors)
    world.member.refresh_from_db()
    assert world.member.role == Role.MEMBER
    with pytest.raises(ValidationError):
        services.change_role(membership=world.member, role=role, actor=world.admin.user)


def test_the_database_refuses_a_role_outside_the_three(world):
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.filter(pk=world.member.pk).update(role="owner")


def test_the_last_admin_cannot_be_demoted(client_for, world):
    client = client_for(world.admin)
    response = client.post(members_url(world, "members:role", world.admin.pk), {"role": "member"})
    assert response.status_code == 200
    assert "at least one Admin" in str(response.context["form"].errors)
    world.admin.refresh_from_db()
    assert world.admin.role == Role.ADMIN


def test_an_admin_may_demote_themself_when_another_admin_remains(client_for, world):
    services.change_role(membership=world.member, role=Role.ADMIN, actor=world.admin.user)
    client = client_for(world.admin)
    response = client.post(members_url(world, "members:role", world.admin.pk), {"role": "member"})
    # No longer allowed to see the members page: back to the org home.
    assert response["Location"] == reverse("org_home", args=[world.org.slug])
    world.admin.refresh_from_db()
    assert world.admin.role == Role.MEMBER
    assert client.get(members_url(world)).status_code == 403


def test_a_demoted_admin_gets_the_default_workspace(world):
    second = MembershipFactory(organization=world.org, role=Role.ADMIN)
    services.change_role(membership=second, role=Role.MEMBER, actor=world.admin.user)
    assert [w.name for w in second.workspaces.all()] == ["Default"]
    # Recorded as choosing their workspaces would be.
    added = AuditEvent.objects.get(action="workspace_member.added")
    assert (added.target_label, added.actor, added.after) == (
        second.user.email,
        world.admin.user,
        {"workspace": "Default"},
    )


# Workspace access -----------------------------------------------------------------------------


def test_admin_chooses_a_members_workspaces(client_for, world):
    default = world.org.workspaces.get(is_default=True)
    client = client_for(world.admin)
    url = members_url(world, "members:workspaces", world.member.pk)
    page = client.get(url)
    assert page.status_code == 200
    assert list(page.context["form"].initial["workspaces"]) == [world.workspace]
    client.post(url, {"workspaces": [default.pk]})
    assert list(world.member.workspaces.all()) == [default]
    actions = sorted(
        AuditEvent.objects.filter(action__startswith="workspace_member.").values_list(
            "action", "after", "before"
        )
    )
    assert actions == [
        ("workspace_member.added", {"workspace": "Default"}, None),
        ("workspace_member.removed", None, {"workspace": "Development"}),
    ]


def test_workspaces_of_another_org_cannot_be_chosen(client_for, world):
    client = client_for(world.admin)
    url = members_url(world, "members:workspaces", world.member.pk)
    response = client.post(url, {"workspaces": [world.other_workspace.pk]})
    assert response.status_code == 200 and response.context["form"].errors
    assert list(world.member.workspaces.all()) == [world.workspace]
    with pytest.raises(ValidationError):
        services.set_member_workspaces(
            membership=world.member, workspaces=[world.other_workspace], actor=None
        )


def test_admins_are_in_every_workspace_so_there_is_nothing_to_choose(client_for, world):
    client = client_for(world.admin)
    url = members_url(world, "members:workspaces", world.admin.pk)
    page = client.get(url)
    assert "Admins are in every workspace" in page.content.decode()
    client.post(url, {"workspaces": [world.workspace.pk]})
    assert not world.admin.workspaces.exists()
    with pytest.raises(ValidationError, match="every workspace"):
        services.set_member_workspaces(
            membership=world.admin, workspaces=[world.workspace], actor=None
        )


def test_archived_workspace_links_are_kept_when_editing(world):
    from orgs import services as org_services

    org_services.archive_workspace(workspace=world.workspace, actor=None)
    default = world.org.workspaces.get(is_default=True)
    services.set_member_workspaces(membership=world.member, workspaces=[default], actor=None)
    assert set(world.member.workspaces.all()) == {default, world.workspace}


def issue_key(membership, workspace, name="Key"):
    return key_services.create_api_key(
        membership=membership, workspace=workspace, name=name, actor=membership.user
    )


def test_taking_a_workspace_away_revokes_the_members_keys_there_only(client_for, world):
    default = world.org.workspaces.get(is_default=True)
    testing = world.org.workspaces.create(name="Testing")
    services.set_member_workspaces(
        membership=world.member, workspaces=[world.workspace, default, testing], actor=None
    )
    lost = issue_key(world.member, world.workspace, "Development")
    lost_too = issue_key(world.member, testing, "Testing")
    kept = issue_key(world.member, default, "Default")
    admins = issue_key(world.admin, world.workspace, "Admin's")
    colleague = MembershipFactory(organization=world.org, role=Role.MEMBER)
    WorkspaceMembership.objects.create(membership=colleague, workspace=world.workspace)
    colleagues = issue_key(colleague, world.workspace, "Colleague's")

    client = client_for(world.admin)
    url = members_url(world, "members:workspaces", world.member.pk)
    assert "revokes their API keys in it" in client.get(url).content.decode()
    assert client.post(url, {"workspaces": [default.pk]}).status_code == 302

    assert verify_key(lost.plaintext).failure == Failure.REVOKED
    assert verify_key(lost_too.plaintext).failure == Failure.REVOKED
    for issued in (kept, admins, colleagues):
        assert verify_key(issued.plaintext).ok
    revocations = AuditEvent.objects.filter(action="apikey.revoked")
    assert sorted(int(e.target_id) for e in revocations) == sorted([lost.key.pk, lost_too.key.pk])
    assert {(e.actor_id, e.after["reason"]) for e in revocations} == {
        (world.admin.user.pk, "workspace access removed")
    }


def test_adding_workspaces_revokes_nothing(world):
    issued = issue_key(world.member, world.workspace)
    default = world.org.workspaces.get(is_default=True)
    services.set_member_workspaces(
        membership=world.member, workspaces=[world.workspace, default], actor=None
    )
    assert verify_key(issued.plaintext).ok
    assert not AuditEvent.objects.filter(action="apikey.revoked").exists()


def test_a_demoted_admin_loses_keys_only_outside_the_workspaces_they_keep(world):
    second = MembershipFactory(organization=world.org, role=Role.ADMIN)
    default = world.org.workspaces.get(is_default=True)
    elsewhere = issue_key(second, world.workspace, "Development")
    kept = issue_key(second, default, "Default")
    # Promotion and a change between roles that reach the same workspaces revoke nothing.
    services.change_role(membership=world.member, role=Role.ADMIN, actor=world.admin.user)
    assert not AuditEvent.objects.filter(action="apikey.revoked").exists()

    services.change_role(membership=second, role=Role.MEMBER, actor=world.admin.user)
    assert verify_key(elsewhere.plaintext).failure == Failure.REVOKED
    assert verify_key(kept.plaintext).ok
    event = AuditEvent.objects.get(action="apikey.revoked")
    assert event.target_id == str(elsewhere.key.pk)
    assert event.after["reason"] == "workspace access removed"


def test_a_member_moved_to_billing_only_keeps_no_api_key(client_for, world):
    default = world.org.workspaces.get(is_default=True)
    services.set_member_workspaces(
        membership=world.member, workspaces=[world.workspace, default], actor=None
    )
    first = issue_key(world.member, world.workspace, "Development")
    second = issue_key(world.member, default, "Default")
    colleague = issue_key(world.admin, world.workspace, "Admin's")
    response = client_for(world.admin).post(
        members_url(world, "members:role", world.member.pk), {"role": Role.BILLING}
    )
    assert response.status_code == 302
    assert verify_key(first.plaintext).failure == Failure.REVOKED
    assert verify_key(second.plaintext).failure == Failure.REVOKED
    assert verify_key(colleague.plaintext).ok
    revocations = AuditEvent.objects.filter(action="apikey.revoked")
    assert sorted(int(e.target_id) for e in revocations) == sorted([first.key.pk, second.key.pk])
    assert {(e.actor_id, e.after["reason"]) for e in revocations} == {
        (world.admin.user.pk, "role changed to Billing-only")
    }
    # Back to Member: nothing comes back, nothing more is revoked.
    services.change_role(membership=world.member, role=Role.MEMBER, actor=world.admin.user)
    assert verify_key(first.plaintext).failure == Failure.REVOKED
    assert revocations.count() == 2


def test_the_role_page_says_billing_only_revokes_keys(client_for, world):
    page = client_for(world.admin).get(members_url(world, "members:role", world.member.pk))
    assert (
        "moving someone to Billing-only revokes every key they have here" in page.content.decode()
    )


# Removing members -----------------------------------------------------------------------------


def test_removed_member_loses_access_at_the_next_request(client_for, world):
    member_client = Client()
    member_client.force_login(world.member.user)
    assert member_client.get(reverse("org_home", args=[world.org.slug])).status_code == 200

    received = []

    def on_removing(sender, membership, actor, **kwargs):
        received.append((membership.pk, actor))

    member_removing.connect(on_removing)
    try:
        admin = client_for(world.admin)
        url = members_url(world, "members:remove", world.member.pk)
        assert admin.get(url).status_code == 200  # confirmation first
        assert Membership.objects.filter(pk=world.member.pk).exists()
        response = admin.post(url)
    finally:
        member_removing.disconnect(on_removing)
    assert response.status_code == 302
    assert received == [(world.member.pk, world.admin.user)]
    assert not Membership.objects.filter(pk=world.member.pk).exists()
    assert not WorkspaceMembership.objects.filter(membership_id=world.member.pk).exists()
    assert member_client.get(reverse("org_home", args=[world.org.slug])).status_code == 404
    assert AuditEvent.objects.filter(action="member.removed").get().target_label == (
        "dev@example.com"
    )


def test_the_last_admin_cannot_be_removed(client_for, world):
    client = client_for(world.admin)
    response = client.post(members_url(world, "members:remove", world.admin.pk))
    assert response.status_code == 400
    assert "at least one Admin" in response.content.decode()
    assert Membership.objects.filter(pk=world.admin.pk).exists()


def test_members_of_another_org_cannot_be_reached_through_ours(client_for, world):
    client = client_for(world.admin)
    for name in ("members:role", "members:workspaces", "members:remove"):
        assert client.post(members_url(world, name, world.outsider.pk)).status_code == 404
    assert Membership.objects.filter(pk=world.outsider.pk).exists()


# Leaving --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["member", "billing"])
def test_a_member_leaves_the_organization(client_for, world, role):
    membership = world.membership(role)
    client = client_for(membership)
    url = members_url(world, "members:leave")
    assert client.get(url).status_code == 200
    response = client.post(url)
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert AuditEvent.objects.filter(action="member.left", actor=membership.user).exists()
    assert client.get(reverse("org_home", args=[world.org.slug])).status_code == 404


def test_the_last_admin_cannot_leave(client_for, world):
    client = client_for(world.admin)
    response = client.post(members_url(world, "members:leave"))
    assert response.status_code == 400
    assert "at least one Admin" in response.content.decode()
    assert Membership.objects.filter(pk=world.admin.pk).exists()
    with pytest.raises(ValidationError):
        services.leave_organization(membership=world.admin)
    # Told before trying: the page explains and offers no Leave button.
    page = client.get(members_url(world, "members:leave")).content.decode()
    assert "at least one Admin" in page and "Leave organization</button>" not in page
    # With a second Admin, the page offers the button again.
    world.membership("member").role = "admin"
    world.membership("member").save(update_fields=["role"])
    page = client.get(members_url(world, "members:leave")).content.decode()
    assert "at least one Admin" not in page and "Leave organization</button>" in page


# Who may do what ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["member", "billing"])
def test_non_admins_are_told_only_admins_manage_members_and_who_they_are(client_for, world, role):
    client = client_for(world.membership(role))
    response = client.get(members_url(world))
    assert response.status_code == 403
    text = response.content.decode()
    assert "Only Admins can see the member list, invite new members" in text
    assert "admin@example.com" in text
    assert "Invite member" not in text


@pytest.mark.parametrize("role", ["member", "billing"])
def test_non_admins_cannot_change_roles_or_remove(client_for, world, role):
    client = client_for(world.membership(role))
    client.post(members_url(world, "members:role", world.admin.pk), {"role": "member"})
    client.post(members_url(world, "members:remove", world.admin.pk))
    world.admin.refresh_from_db()
    assert world.admin.role == Role.ADMIN


def test_the_admin_sees_the_invite_button(client_for, world):
    text = client_for(world.admin).get(members_url(world)).content.decode()
    assert "Invite member" in text
    assert reverse("members:invite", args=[world.org.slug]) in text


def test_adding_the_same_user_twice_is_refused_cleanly(world):
    user = UserFactory()
    services.add_member(organization=world.org, user=user, role=Role.MEMBER, actor=None)
    with pytest.raises(ValidationError, match="already a member"):
        services.add_member(organization=world.org, user=user, role=Role.MEMBER, actor=None)
