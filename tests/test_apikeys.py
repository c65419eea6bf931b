"""API keys in the console: the key format, create (shown once), list, rename, revoke, rotate,
who may do what, bad input, the audit trail, and that the plaintext key is kept nowhere."""

import datetime as dt
import hashlib
import json
import math
import random
import re
import zlib

import pytest
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apikeys import services
from apikeys.forms import new_form_token
from apikeys.keyformat import (
    KEY_LENGTH,
    KEY_PATTERN,
    RANDOM_LENGTH,
    check_key_format,
    generate_key,
    hash_key,
)
from apikeys.models import ApiKey
from apikeys.verification import Failure, verify_key
from audit.models import AuditEvent
from members import services as member_services
from members.models import Role, WorkspaceMembership
from orgs import services as org_services

from .factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def issue(membership, workspace=None, name="Development", **kwargs):
    workspace = (
        workspace
        or membership.workspaces.first()
        or membership.organization.workspaces.get(is_default=True)
    )
    return services.create_api_key(
        membership=membership, workspace=workspace, name=name, actor=membership.user, **kwargs
    )


def url(name, world, *args):
    return reverse(f"apikeys:{name}", args=[world.org.slug, *args])


def post_create(client, world, values):
    """Submit the Create Key form as a browser does, with the one-time token a blank form has."""
    return client.post(url("create", world), {"form_token": new_form_token(), **values})


# -- the format ------------------------------------------------------------------------------


def test_a_key_has_our_prefix_256_bits_of_base62_and_a_crc32_suffix():
    key = generate_key()
    assert re.fullmatch(KEY_PATTERN, key)
    assert key.startswith("csk_") and not key.startswith("sk-ant-")
    assert len(key) == KEY_LENGTH == 53
    assert RANDOM_LENGTH * math.log2(62) >= 256
    # The suffix is CRC32 of everything before it, in base62, computed here independently.
    body, suffix = key[:-6], key[-6:]
    value = sum(DIGITS.index(c) * 62**i for i, c in enumerate(reversed(suffix)))
    assert value == zlib.crc32(body.encode())
    assert check_key_format(key) is None
    assert len({generate_key() for _ in range(1000)}) == 1000


def test_the_scanner_regex_finds_a_key_in_surrounding_text():
    key = generate_key()
    leaked = f'config = {{"api_key": "{key}"}}\nANTHROPIC_API_KEY={key}\n'
    assert re.findall(KEY_PATTERN, leaked) == [key, key]
    assert re.findall(KEY_PATTERN, "csk_" + "a" * 60) == []


def test_any_single_character_change_fails_the_checksum():
    key = generate_key()
    rng = random.Random(4)
    for _ in range(300):
        position = rng.randrange(4, KEY_LENGTH)
        replacement = rng.choice(DIGITS.replace(key[position], ""))
        damaged = key[:position] + replacement + key[position + 1 :]
        assert check_key_format(damaged) is not None


@pytest.mark.parametrize(
    ("mangle", "reason_part"),
    [
        (lambda k: " " + k, "spaces"),
        (lambda k: k + "\n", "line breaks"),
        (lambda k: k[:20] + " " + k[20:], "spaces"),
        (lambda k: k.upper(), "lower case"),
        (lambda k: k.swapcase(), "lower case"),
        (lambda k: k[:4] + k[4:].swapcase(), "checksum"),
        (lambda k: k[:-1], "characters"),
        (lambda k: k + "x", "characters"),
        (lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"), "checksum"),
        (lambda k: k[:10] + "-" + k[11:], "letters and digits"),
        (lambda k: "sk-ant-api03-" + k[4:], "Anthropic"),
        (lambda k: "", "No key"),
    ],
)
def test_check_key_format_explains_what_is_wrong_without_repeating_the_key(mangle, reason_part):
    key = generate_key()
    reason = check_key_format(mangle(key))
    assert reason is not None and reason_part in reason
    assert key[4:20] not in reason


def test_the_stored_hash_is_peppered(settings):
    key = generate_key()
    assert hash_key(key) != hashlib.sha256(key.encode()).hexdigest()
    before = hash_key(key)
    settings.API_KEY_PEPPER = "another-pepper"
    assert hash_key(key) != before


# -- create and show once --------------------------------------------------------------------


def test_member_creates_a_key_and_sees_it_once(client, world):
    client.force_login(world.member.user)
    response = post_create(client, world, {"name": "Development", "workspace": world.workspace.pk})
    assert response.status_code == 200
    plaintext = response.context["issued"].plaintext
    page = response.content.decode()
    assert plaintext in page
    assert "Copy the key now: you won't see it again" in page
    assert 'data-copy-target="#new-key"' in page
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get(organization=world.org)
    assert (key.name, key.workspace, key.owner) == (
        "Development",
        world.workspace,
        world.member.user,
    )
    assert verify_key(plaintext).context.key_id == key.pk
    # Afterwards the console shows only the prefix and last 4, on every page.
    listing = client.get(url("list", world)).content.decode()
    assert plaintext not in listing and key.display in listing
    assert plaintext not in client.get(url("rename", world, key.pk)).content.decode()


def test_a_reload_of_the_key_created_page_mints_nothing(client, world):
    client.force_login(world.member.user)
    token = client.get(url("create", world)).context["form"].initial["form_token"]
    values = {"form_token": token, "name": "Development", "workspace": world.workspace.pk}
    first = client.post(url("create", world), values)
    plaintext = first.context["issued"].plaintext
    # The browser resubmits the same POST: the same one-time token.
    again = client.post(url("create", world), values)
    assert again.status_code == 409 and "no-store" in again["Cache-Control"]
    page = again.content.decode()
    assert "Development was created already" in page
    assert "A key is shown only once" in page
    assert plaintext not in page and "issued" not in again.context
    key = ApiKey.objects.get()
    assert key.display in page
    assert AuditEvent.objects.filter(action="apikey.created").count() == 1
    # A new blank form is a new token: a second key is one click away.
    assert client.get(url("create", world)).context["form"].initial["form_token"] != token


def test_a_form_without_its_token_is_shown_again_with_a_fresh_one(client, world):
    client.force_login(world.member.user)
    for token in ("", "short", "x" * 65, "not a token at all, with spaces and !!"):
        response = client.post(
            url("create", world),
            {"form_token": token, "name": "Development", "workspace": world.workspace.pk},
        )
        assert response.status_code == 200
        assert "This form was out of date" in response.content.decode()
        fresh = response.context["form"].data["form_token"]
        assert fresh != token and len(fresh) >= 32
    assert not ApiKey.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_submissions_of_one_form_at_once_make_one_key(world):
    """A double click: both requests race; the unique token lets one through, the other gets
    that key back."""
    import threading

    token = new_form_token()
    barrier = threading.Barrier(2)
    outcomes = []

    def submit():
        try:
            barrier.wait()
            issue(world.member, form_token=token)
            outcomes.append("created")
        except services.KeyAlreadyCreated as already:
            outcomes.append(already.key.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    key = ApiKey.objects.get()
    assert sorted(outcomes, key=str) == sorted(["created", key.pk], key=str)
    assert AuditEvent.objects.filter(action="apikey.created").count() == 1


def test_a_reload_of_the_key_rotated_page_rotates_nothing(client, world):
    old = issue(world.member).key
    client.force_login(world.member.user)
    first = client.post(url("rotate", world, old.pk), {"overlap": "24h"})
    plaintext = first.context["issued"].plaintext
    again = client.post(url("rotate", world, old.pk), {"overlap": "24h"})
    assert again.status_code == 409
    page = again.content.decode()
    assert "was rotated already" in page and "A key is shown only once" in page
    assert plaintext not in page
    assert ApiKey.objects.count() == 2
    assert AuditEvent.objects.filter(action="apikey.rotated").count() == 1


def test_the_create_form_offers_only_the_members_workspaces(client, world):
    client.force_login(world.member.user)
    choices = list(client.get(url("create", world)).context["form"].fields["workspace"].queryset)
    assert choices == [world.workspace]
    client.force_login(world.admin.user)
    choices = client.get(url("create", world)).context["form"].fields["workspace"].queryset
    assert set(choices) == set(world.org.workspaces.all())


@pytest.mark.parametrize(
    "post",
    [
        {"name": ""},
        {"name": "    "},
        {"name": "x" * 500},
        {"name": "x" * 101},
        {"workspace": "default"},  # the org's default workspace: the member is not in it
        {"workspace": "other_org"},
        {"workspace": "999999"},
        {"workspace": "²"},  # str.isdigit() says yes, int() says no
        {"workspace": "99999999999999999999"},  # beyond a bigint
        {"expires_on": "yesterday"},
        {"expires_on": "not-a-date"},
    ],
)
def test_bad_input_creates_nothing(client, world, post):
    values = {"name": "Development", "workspace": world.workspace.pk, "expires_on": ""}
    values.update(post)
    if values["workspace"] == "default":
        values["workspace"] = world.org.workspaces.get(is_default=True).pk
    if values["workspace"] == "other_org":
        values["workspace"] = world.other_workspace.pk
    if values["expires_on"] == "yesterday":
        values["expires_on"] = (timezone.localdate() - dt.timedelta(days=1)).isoformat()
    client.force_login(world.member.user)
    response = post_create(client, world, values)
    assert response.status_code == 200
    assert response.context["form"].errors
    assert "issued" not in response.context
    assert not ApiKey.objects.exists()
    assert not AuditEvent.objects.filter(action="apikey.created").exists()


def test_the_service_refuses_what_the_form_would_not_offer(world):
    other = world.other_workspace
    with pytest.raises(ValidationError, match="this organization"):
        issue(world.admin, workspace=other)
    org_services.archive_workspace(workspace=world.workspace, actor=None)
    with pytest.raises(ValidationError, match="archived"):
        issue(world.admin, workspace=world.workspace)
    with pytest.raises(ValidationError, match="role cannot hold"):
        issue(world.billing, workspace=world.org.workspaces.get(is_default=True))
    with pytest.raises(ValidationError, match="today or a later"):
        issue(world.admin, expires_on=timezone.localdate() - dt.timedelta(days=1))
    assert not ApiKey.objects.exists()


def test_a_workspace_archived_since_the_form_was_shown_is_refused_in_words(client, world):
    client.force_login(world.member.user)
    assert client.get(url("create", world)).status_code == 200
    org_services.archive_workspace(workspace=world.workspace, actor=world.admin.user)
    response = post_create(client, world, {"name": "Late", "workspace": world.workspace.pk})
    assert response.status_code == 200
    assert response.context["form"].errors["workspace"] == [
        "This workspace is archived: it cannot get new keys."
    ]
    assert "it cannot get new keys" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_an_expiry_date_lasts_through_that_day(world):
    today = timezone.localdate()
    key = issue(world.member, expires_on=today).key
    assert timezone.localtime(key.expires_at).date() == today
    assert key.is_active


def test_admin_creates_in_any_active_workspace(client, world):
    client.force_login(world.admin.user)
    default = world.org.workspaces.get(is_default=True)
    response = post_create(client, world, {"name": "Production", "workspace": default.pk})
    assert response.status_code == 200 and "issued" in response.context


def test_billing_only_cannot_create_a_key(client, world):
    client.force_login(world.billing.user)
    response = post_create(client, world, {"name": "x", "workspace": world.workspace.pk})
    assert response.status_code == 403
    assert not ApiKey.objects.exists()


# -- list ------------------------------------------------------------------------------------


@pytest.fixture
def colleague(world):
    """A second Member of the organization, in the Development workspace, with a key."""
    membership = MembershipFactory(
        organization=world.org, role=Role.MEMBER, user=UserFactory(email="ops@example.com")
    )
    WorkspaceMembership.objects.create(membership=membership, workspace=world.workspace)
    return membership


def test_members_list_their_own_keys_and_admins_all(client, world, colleague):
    issue(world.member, name="Mine")
    issue(colleague, name="Theirs")
    issue(world.admin, name="Admin's")
    client.force_login(world.member.user)
    names = [k.name for k in client.get(url("list", world)).context["table"].data]
    assert names == ["Mine"]
    client.force_login(world.admin.user)
    names = {k.name for k in client.get(url("list", world)).context["table"].data}
    assert names == {"Mine", "Theirs", "Admin's"}


def test_list_filters_by_status_workspace_owner_and_text(client, world, colleague):
    active = issue(world.member, name="Development").key
    revoked = issue(colleague, name="Staging").key
    services.revoke_api_key(key=revoked, actor=None)
    expired = issue(world.admin, name="Testing", workspace=world.workspace).key
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(hours=1))
    production = issue(world.admin, name="Production").key  # default workspace
    client.force_login(world.admin.user)

    def names(**params):
        return {k.name for k in client.get(url("list", world), params).context["table"].data}

    assert names(status="active") == {"Development", "Production"}
    assert names(status="revoked") == {"Staging"}
    assert names(status="expired") == {"Testing"}
    assert names(workspace=world.workspace.pk) == {"Development", "Staging", "Testing"}
    assert names(owner=colleague.user.pk) == {"Staging"}
    assert names(q="prod") == {"Production"}
    assert names(q=active.prefix) == {"Development"}
    assert names(q="ops@") == {"Staging"}
    page = client.get(url("list", world)).content.decode()
    for key, status in [(active, "active"), (revoked, "revoked"), (expired, "expired")]:
        assert key.display in page
        assert f'data-status="{status}"' in page
    assert production.display in page


def test_members_have_no_owner_filter(client, world):
    client.force_login(world.member.user)
    assert "owner" not in client.get(url("list", world)).context["filter"].filters


def test_the_workspace_filter_offers_members_only_their_workspaces(client, world):
    from tests.factories import WorkspaceFactory

    WorkspaceFactory(organization=world.org, name="Secret Project")
    staging = WorkspaceFactory(organization=world.org, name="Staging")
    issue(world.member, name="Old", workspace=world.workspace)
    # Moved out of Development: the key stays on their list, and so does its workspace's name.
    member_services.set_member_workspaces(membership=world.member, workspaces=[staging], actor=None)

    def offered(membership):
        client.force_login(membership.user)
        response = client.get(url("list", world))
        return sorted(w.name for w in response.context["filter"].form.fields["workspace"].queryset)

    assert offered(world.member) == ["Development", "Staging"]
    assert "Secret Project" not in client.get(url("list", world)).content.decode()
    assert offered(world.admin) == ["Default", "Development", "Secret Project", "Staging"]


def test_an_empty_key_list_says_what_keys_are_for_with_the_sdk_snippet(client, world, settings):
    settings.CONSOLE_BASE_URL = "https://console.acme.test"
    client.force_login(world.member.user)
    page = client.get(url("list", world)).content.decode()
    assert "You have no API keys yet" in page and "No API keys match" not in page
    snippet = re.search(r'data-testid="sdk-snippet"><code>(.*?)</code>', page, re.S).group(1)
    assert "export ANTHROPIC_BASE_URL=https://console.acme.test" in snippet
    assert f'href="{url("create", world)}"' in page
    client.force_login(world.admin.user)
    assert "No API keys in Acme Support yet" in client.get(url("list", world)).content.decode()
    # Filters that match nothing say so, with a way back.
    issue(world.member)
    page = client.get(url("list", world), {"q": "nothing-like-this"}).content.decode()
    assert "Nothing matches these filters" in page and "sdk-snippet" not in page


def test_list_exports_csv_without_keys(client, world):
    issued = issue(world.member)
    client.force_login(world.member.user)
    export = client.get(url("list", world), {"_export": "csv"})
    text = export.content.decode()
    assert export["Content-Type"].startswith("text/csv")
    assert (
        text.splitlines()[0]
        == "Name,Key,Workspace,Owner,Status,Created,Last used,Expires,Revoked,Revoked by"
    )
    assert issued.key.display in text and issued.plaintext not in text


def test_list_query_count_does_not_grow_with_keys(client, world, colleague):
    client.force_login(world.admin.user)
    issue(world.member, name="first")

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url("list", world)).status_code == 200
        return len(queries)

    count()  # the first request after logging in also writes the session
    few = count()
    for n in range(15):
        issue(colleague if n % 2 else world.member, name=f"key {n}")
    assert count() == few


def test_list_table_swaps_in_with_htmx(client, world):
    issue(world.member)
    client.force_login(world.member.user)
    response = client.get(
        url("list", world),
        {"status": "active"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="table-region",
    )
    assert response.templates[0].name == "partials/table.html"


# -- rename, revoke, rotate ------------------------------------------------------------------


def test_member_renames_and_revokes_own_key(client, world):
    issued = issue(world.member)
    key = issued.key
    client.force_login(world.member.user)
    client.post(url("rename", world, key.pk), {"name": "Laptop"})
    key.refresh_from_db()
    assert key.name == "Laptop"
    # GET asks for confirmation and changes nothing.
    assert client.get(url("revoke", world, key.pk)).status_code == 200
    assert verify_key(issued.plaintext).ok
    response = client.post(url("revoke", world, key.pk), follow=True)
    assert "is revoked" in response.content.decode()
    assert verify_key(issued.plaintext).failure == Failure.REVOKED
    # Revoked keys stay listed, as revoked.
    page = client.get(url("list", world)).content.decode()
    assert "Laptop" in page and 'data-status="revoked"' in page


@pytest.mark.parametrize("name", ["", "x" * 500])
def test_rename_refuses_bad_names(client, world, name):
    key = issue(world.member).key
    client.force_login(world.member.user)
    response = client.post(url("rename", world, key.pk), {"name": name})
    assert response.status_code == 200 and response.context["form"].errors
    key.refresh_from_db()
    assert key.name == "Development"


def test_member_cannot_see_rename_revoke_or_rotate_another_members_key(client, world, colleague):
    theirs = issue(colleague, name="Theirs")
    client.force_login(world.member.user)
    for action in ("rename", "revoke", "rotate"):
        assert client.get(url(action, world, theirs.key.pk)).status_code == 404
    assert client.post(url("rename", world, theirs.key.pk), {"name": "Mine"}).status_code == 404
    assert client.post(url("revoke", world, theirs.key.pk)).status_code == 404
    assert client.post(url("rotate", world, theirs.key.pk), {"overlap": "now"}).status_code == 404
    theirs.key.refresh_from_db()
    assert theirs.key.name == "Theirs" and theirs.key.is_active and theirs.key.replaced_by is None
    assert verify_key(theirs.plaintext).ok
    assert "Theirs" not in client.get(url("list", world)).content.decode()


def test_admin_revokes_a_members_key(client, world):
    issued = issue(world.member)
    client.force_login(world.admin.user)
    client.post(url("revoke", world, issued.key.pk))
    assert verify_key(issued.plaintext).failure == Failure.REVOKED
    event = AuditEvent.objects.get(action="apikey.revoked")
    assert event.actor == world.admin.user


def test_the_owner_sees_who_revoked_their_key_and_when_and_is_emailed(
    client, world, mailoutbox, django_capture_on_commit_callbacks
):
    issued = issue(world.member, name="CI runner")
    client.force_login(world.admin.user)
    confirm = client.get(url("revoke", world, issued.key.pk)).content.decode()
    assert "dev@example.com will be emailed that you revoked it" in confirm
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("revoke", world, issued.key.pk))
    key = ApiKey.objects.get(pk=issued.key.pk)
    assert (key.revoked_by, key.revoked_by_label) == (world.admin.user, "admin@example.com")

    client.force_login(world.member.user)
    page = client.get(url("list", world)).content.decode()
    stamp = re.search(r'data-testid="revoked-by">(.*?)</div>', page, re.S).group(1)
    assert stamp.startswith("by admin@example.com, <time")
    assert key.revoked_at.astimezone(world.org.tzinfo).strftime("%H:%M") in stamp
    assert "already revoked" in client.get(url("revoke", world, key.pk)).content.decode()
    assert (
        "admin@example.com revoked it" in client.get(url("revoke", world, key.pk)).content.decode()
    )
    export = client.get(url("list", world), {"_export": "csv"}).content.decode()
    assert "Revoked by" in export.splitlines()[0] and "admin@example.com" in export

    [email] = mailoutbox
    assert email.to == ["dev@example.com"]
    assert email.subject.endswith('Your API key "CI runner" was revoked')
    assert "admin@example.com revoked your API key in Acme Support" in email.body
    assert key.display in email.body and issued.plaintext not in email.body
    assert "/o/acme-support/api-keys/" in email.body


def test_no_email_when_owners_revoke_their_own_keys(
    client, world, mailoutbox, django_capture_on_commit_callbacks
):
    issued = issue(world.member)
    client.force_login(world.member.user)
    assert "will be emailed" not in client.get(url("revoke", world, issued.key.pk)).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("revoke", world, issued.key.pk))
    assert ApiKey.objects.get().revoked_by_label == "dev@example.com"
    assert mailoutbox == []


def test_keys_revoked_together_make_one_email_per_owner(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    issue(world.member, name="One")
    issue(world.member, name="Two")
    with django_capture_on_commit_callbacks(execute=True):
        member_services.remove_member(membership=world.member, actor=world.admin.user)
    [email] = mailoutbox
    assert email.subject.endswith("2 of your API keys were revoked")
    assert '"One"' in email.body and '"Two"' in email.body
    assert "(member removed)" in email.body


def test_a_key_of_another_org_is_not_found(client, world):
    theirs = issue(world.outsider, workspace=world.other_workspace)
    client.force_login(world.admin.user)
    assert client.post(url("revoke", world, theirs.key.pk)).status_code == 404
    assert verify_key(theirs.plaintext).ok


def test_double_revocation_is_refused_clearly(client, world):
    key = issue(world.member).key
    client.force_login(world.member.user)
    client.post(url("revoke", world, key.pk))
    response = client.post(url("revoke", world, key.pk), follow=True)
    assert response.status_code == 200
    assert "already revoked" in response.content.decode()
    assert AuditEvent.objects.filter(action="apikey.revoked").count() == 1
    with pytest.raises(ValidationError, match="already revoked"):
        services.revoke_api_key(key=key, actor=None)


def test_rotation_keeps_the_old_key_working_for_the_overlap(client, world):
    old = issue(world.member)
    client.force_login(world.member.user)
    assert client.get(url("rotate", world, old.key.pk)).status_code == 200
    before = timezone.now()
    response = client.post(url("rotate", world, old.key.pk), {"overlap": "24h"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    new = response.context["issued"]
    assert new.plaintext in response.content.decode()
    assert "Copy the key now: you won't see it again" in response.content.decode()
    old.key.refresh_from_db()
    assert old.key.replaced_by == new.key
    assert (
        before + dt.timedelta(hours=24)
        <= old.key.expires_at
        <= timezone.now() + dt.timedelta(hours=24)
    )
    assert (new.key.name, new.key.workspace, new.key.owner) == (
        old.key.name,
        old.key.workspace,
        old.key.owner,
    )
    assert verify_key(old.plaintext).ok and verify_key(new.plaintext).ok
    rotated = AuditEvent.objects.get(action="apikey.rotated")
    assert rotated.target_id == str(old.key.pk)
    assert rotated.after["replaced_by"] == new.key.display


def test_both_rows_of_a_rotation_name_each_other_and_the_time_left(client, world):
    old = issue(world.member, name="Production").key
    new = services.rotate_api_key(key=old, overlap=dt.timedelta(hours=24), actor=None).key
    client.force_login(world.member.user)
    page = client.get(url("list", world)).content.decode()
    notes = [
        " ".join(re.sub(r"<[^>]+>", "", note).split())
        for note in re.findall(r'data-testid="rotation">(.*?)</div>', page, re.S)
    ]
    # Newest first: the new key's row, then the old one's.
    assert notes == [
        f"rotated from {old.display}, old one expires in 23 h",
        f"rotated → {new.display}, this one expires in 23 h",
    ]
    ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now())
    page = client.get(url("list", world)).content.decode()
    assert "old one has expired" in page and "this one has expired" in page


def test_a_second_key_of_the_same_name_is_warned_about_once(client, world):
    first = issue(world.member, name="Production").key
    client.force_login(world.member.user)
    values = {"name": "production ", "workspace": world.workspace.pk}
    response = post_create(client, world, values)
    assert response.status_code == 200
    [warning] = response.context["form"].errors["name"]
    assert f"You already have a working key named Production ({first.display}" in warning
    assert ApiKey.objects.count() == 1
    # Submitted again as shown (the warning acknowledged), it goes ahead.
    again = {**response.context["form"].data.dict()}
    assert again["same_name_ok"] == "1"
    assert client.post(url("create", world), again).context["issued"].key.name == "production"
    # Renaming onto a working key's name warns the same way; a revoked key's name is free.
    other = issue(world.member, name="Staging").key
    response = client.post(url("rename", world, other.pk), {"name": "Production"})
    assert "You already have a working key named" in response.content.decode()
    services.revoke_api_key(key=first, actor=None)
    services.revoke_api_key(key=ApiKey.objects.get(name="production"), actor=None)
    response = client.post(url("rename", world, other.pk), {"name": "Production"})
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=other.pk).name == "Production"


def test_rotation_with_no_overlap_expires_the_old_key_at_once(world):
    old = issue(world.member)
    new = services.rotate_api_key(key=old.key, overlap=dt.timedelta(0), actor=None)
    assert verify_key(old.plaintext).failure == Failure.EXPIRED
    assert verify_key(new.plaintext).ok


def test_rotating_a_revoked_expired_or_rotated_key_is_refused(client, world):
    revoked = issue(world.member, name="revoked").key
    services.revoke_api_key(key=revoked, actor=None)
    rotated = issue(world.member, name="rotated").key
    services.rotate_api_key(key=rotated, overlap=dt.timedelta(hours=1), actor=None)
    expired = issue(world.member, name="expired").key
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    keys_before = ApiKey.objects.count()
    client.force_login(world.member.user)
    for key in (revoked, rotated, expired):
        response = client.post(url("rotate", world, key.pk), {"overlap": "24h"}, follow=True)
        if key == rotated:  # most likely the rotation's own page, reloaded
            assert response.status_code == 409
            assert "was rotated already" in response.content.decode()
        else:
            assert response.status_code == 200
            assert "cannot be rotated" in response.content.decode()
        key.refresh_from_db()
        with pytest.raises(ValidationError):
            services.rotate_api_key(key=key, overlap=dt.timedelta(hours=1), actor=None)
    assert ApiKey.objects.count() == keys_before


def test_rotation_refuses_an_overlap_not_offered(client, world):
    key = issue(world.member).key
    client.force_login(world.member.user)
    response = client.post(url("rotate", world, key.pk), {"overlap": "30d"})
    assert response.status_code == 200 and response.context["form"].errors
    assert ApiKey.objects.count() == 1


# -- member removal --------------------------------------------------------------------------


def test_removing_a_member_revokes_their_keys_as_done_by_the_remover(world):
    mine = issue(world.member)
    elsewhere = issue(world.admin, name="Admin's key")
    member_services.remove_member(membership=world.member, actor=world.admin.user)
    assert verify_key(mine.plaintext).failure == Failure.REVOKED
    assert verify_key(elsewhere.plaintext).ok
    event = AuditEvent.objects.get(action="apikey.revoked")
    assert event.actor == world.admin.user and event.after["reason"] == "member removed"
    assert event.target_id == str(mine.key.pk)


def test_deleting_a_user_revokes_their_keys(world):
    issued = issue(world.member)
    world.member.user.delete()
    issued.key.refresh_from_db()
    assert issued.key.owner is None and issued.key.revoked_at is not None
    assert verify_key(issued.plaintext).failure == Failure.REVOKED


# -- the plaintext is kept nowhere -----------------------------------------------------------


def _all_database_text() -> str:
    """Every row of every table, as JSON text."""
    tables = connection.introspection.table_names()
    chunks = []
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')
            chunks.extend(row[0] for row in cursor.fetchall())
    return "\n".join(chunks)


def test_the_database_row_holds_no_plaintext(world):
    issued = issue(world.member)
    row = ApiKey.objects.filter(pk=issued.key.pk).values().get()
    assert issued.plaintext not in json.dumps(row, default=str)
    assert row["key_hash"] == hash_key(issued.plaintext)
    assert issued.plaintext[4:-4] not in _all_database_text()
    assert "plaintext" not in repr(issued) and issued.plaintext not in repr(issued)


def test_the_key_is_absent_from_audit_logs_emails_and_sessions(client, world, caplog, mailoutbox):
    caplog.set_level("DEBUG")
    client.force_login(world.member.user)
    response = post_create(client, world, {"name": "Development", "workspace": world.workspace.pk})
    first = response.context["issued"]
    response = client.post(url("rotate", world, first.key.pk), {"overlap": "1h"})
    second = response.context["issued"]
    secrets = [first.plaintext, second.plaintext]
    for secret in secrets:
        assert verify_key(secret).ok
        assert verify_key(secret + " ").failure == Failure.MALFORMED
    client.post(url("rename", world, second.key.pk), {"name": "Dev laptop"})
    # Time passes: the hygiene task emails about the keys and records the first one's expiry.
    later = timezone.now() + dt.timedelta(days=95)
    ApiKey.objects.update(created_at=timezone.now() - dt.timedelta(days=95))
    services.record_expiries(now=later)
    services.send_due_notices(now=timezone.now())
    assert mailoutbox
    client.post(url("revoke", world, second.key.pk))
    member_services.remove_member(membership=world.member, actor=world.admin.user)

    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"apikey.created", "apikey.rotated", "apikey.renamed", "apikey.revoked"} <= actions
    audit_text = json.dumps(list(AuditEvent.objects.values()), default=str, ensure_ascii=False)
    mail_text = "\n".join(
        m.subject + m.body + "".join(content for content, _ in m.alternatives) for m in mailoutbox
    )
    session_text = json.dumps([s.get_decoded() for s in Session.objects.all()], default=str)
    for secret in secrets:
        assert secret not in audit_text
        assert secret not in caplog.text
        assert secret not in mail_text
        assert secret not in session_text
        assert secret[4:-4] not in _all_database_text()
    assert first.key.display in audit_text  # what audit rows do say
