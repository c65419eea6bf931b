"""The audit log viewer (the guide's "Audit Logs"): each action of the guide yields an event with
actor, IP address, user agent and before/after; the log reads as sentences naming their target;
filters by actor, action, target type, target, IP and period (bad values are form errors); an
event's detail shows before/after as a diff; CSV of what is filtered, streamed; the verifiable
JSON Lines export checks out offline and an edited line is found."""

import csv
import datetime as dt
import io
import json
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apikeys.forms import new_form_token
from apikeys.models import ApiKey
from audit.models import AuditEvent
from audit.services import record_event
from members.models import Invitation, Role

pytestmark = pytest.mark.django_db

ORIGIN = {"REMOTE_ADDR": "203.0.113.9", "HTTP_USER_AGENT": "Mozilla/5.0 (pytest)"}


def url(world, name="audit_log", *args):
    return reverse(name, args=[world.org.slug, *args])


def streamed(response) -> str:
    return b"".join(response.streaming_content).decode()


def sentences(page) -> list[str]:
    table = page.context["table"]
    cells = (re.sub(r"<[^>]+>", "", str(row.get_cell("event"))) for row in table.paginated_rows)
    return [" ".join(cell.split()) for cell in cells]


@pytest.fixture
def admin(client, world):
    client.force_login(world.admin.user)
    return client


def test_the_guides_actions_each_yield_an_event_with_actor_origin_and_before_after(admin, world):
    slug = world.org.slug
    # Key creation and revocation.
    admin.post(f"/o/{slug}/api-keys/new/", {"name": "Deploy", "workspace": world.workspace.pk,
               "form_token": new_form_token()}, **ORIGIN)  # fmt: skip
    key = ApiKey.objects.get(name="Deploy")
    admin.post(f"/o/{slug}/api-keys/{key.pk}/revoke/", **ORIGIN)
    # An invitation and a role change.
    admin.post(f"/o/{slug}/members/invite/", {"email": "pat@acme.test", "role": "member"},
               **ORIGIN)  # fmt: skip
    admin.post(f"/o/{slug}/members/{world.member.pk}/role/", {"role": Role.BILLING}, **ORIGIN)
    expected = {
        "apikey.created": (None, {"name": "Deploy", "workspace": "Development"}),
        "apikey.revoked": ({"status": "active"}, None),
        "member.invited": (None, {"email": "pat@acme.test", "role": "member"}),
        "member.role_changed": ({"role": "member"}, {"role": "billing"}),
    }
    for action, (before, after) in expected.items():
        event = AuditEvent.objects.get(action=action, organization=world.org)
        assert (event.actor_label, event.ip_address, event.user_agent) == (
            "admin@example.com", "203.0.113.9", "Mozilla/5.0 (pytest)",
        ), action  # fmt: skip
        for side, values in (("before", before), ("after", after)):
            stored = getattr(event, side) or {}
            assert values is None or values.items() <= stored.items(), (action, side, stored)


def test_the_log_reads_as_sentences_naming_the_target(admin, world):
    admin.post(f"/o/{world.org.slug}/members/{world.member.pk}/workspaces/",
               {"workspaces": [world.workspace.pk, world.org.workspaces.get(name="Default").pk]})  # fmt: skip
    from orgs.services import create_workspace

    production = create_workspace(organization=world.org, actor=world.admin.user, name="Production")
    admin.post(f"/o/{world.org.slug}/members/{world.member.pk}/workspaces/",
               {"workspaces": [production.pk]})  # fmt: skip
    page = admin.get(url(world))
    lines = sentences(page)
    assert "added dev@example.com to workspace Production" in lines
    assert "removed dev@example.com from workspace Development" in lines
    assert "created workspace Production" in lines
    assert "Added a member to a workspace" not in " ".join(lines)  # a label, not a sentence


@pytest.fixture
def log(world):
    """A log with events of several actors, actions, targets, addresses and days."""
    from audit.context import RequestOrigin, _current_origin

    def event(action, *, actor=None, ip="198.51.100.1", days_ago=0, **fields):
        token = _current_origin.set(RequestOrigin(ip, "agent"))
        try:
            made = record_event(action=action, organization=world.org, actor=actor, **fields)
        finally:
            _current_origin.reset(token)
        if days_ago:
            from tests.test_audit_chain import rehash_all, tamper

            tamper("UPDATE audit_auditevent SET created_at = %s WHERE id = %s",
                   [timezone.now() - dt.timedelta(days=days_ago), made.pk])  # fmt: skip
            rehash_all()
        return made

    key = ApiKey(pk=999, name="Old deploy")
    # Oldest first, as a log is written.
    event(
        "apikey.revoked", actor=world.member.user, target=key, target_label="Ancient",
        days_ago=20,
    )  # fmt: skip
    event(
        "workspace.created", actor=world.admin.user, target=world.workspace,
        after={"name": "Development"}, days_ago=3,
    )  # fmt: skip
    event(
        "apikey.revoked", actor=world.admin.user, target=key, target_label="Old deploy",
        before={"status": "active"}, ip="203.0.113.9",
    )  # fmt: skip
    event(
        "apikey.created", actor=world.member.user, target=key, target_label="Fresh",
        after={"workspace": "Development"},
    )  # fmt: skip
    record_event(action="workspace.created", organization=world.other_org, target_label="Theirs")
    return world


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["Fresh", "Old deploy", "Development", "Ancient"]),
        ({"action": "apikey.revoked"}, ["Old deploy", "Ancient"]),
        ({"action": "apikey.revoked", "period": "7d"}, ["Old deploy"]),
        ({"actor": "DEV@example"}, ["Fresh", "Ancient"]),
        ({"target_type": "orgs.workspace"}, ["Development"]),
        ({"target": "deploy"}, ["Old deploy"]),
        ({"target": "999"}, ["Fresh", "Old deploy", "Ancient"]),
        ({"ip": "203.0.113.9"}, ["Old deploy"]),
        ({"period": "24h"}, ["Fresh", "Old deploy"]),
        (
            {"since": "2000-01-01", "until": "2999-12-31"},
            ["Fresh", "Old deploy", "Development", "Ancient"],
        ),
    ],
)
def test_filters_narrow_the_log(admin, log, query, expected):
    page = admin.get(url(log), query)
    assert page.status_code == 200
    labels = [row.record.target_label for row in page.context["table"].paginated_rows]
    assert labels == expected


def test_a_date_range_is_read_in_the_organizations_time_zone(admin, world):
    world.org.timezone = "Pacific/Auckland"  # UTC+13 in November
    world.org.save()
    event = record_event(action="workspace.created", organization=world.org, target_label="X")
    local_day = event.created_at.astimezone(world.org.tzinfo).date()
    shown = admin.get(url(world), {"since": local_day, "until": local_day})
    assert [r.record.pk for r in shown.context["table"].paginated_rows] == [event.pk]
    before = admin.get(url(world), {"until": local_day - dt.timedelta(days=1)})
    assert list(before.context["table"].paginated_rows) == []


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"since": "2026-03-10", "until": "2026-03-01"}, "until", "before the start date"),
        ({"action": "apikey.exploded"}, "action", "not one of the available choices"),
        ({"target_type": "nuclear.reactor"}, "target_type", "not one of the available choices"),
        ({"ip": "999.1.1.1"}, "ip", "not an IP address"),
        ({"since": "last tuesday"}, "since", "valid date"),
        ({"period": "forever"}, "period", "not one of the available choices"),
    ],
)
def test_bad_filter_values_are_form_errors_over_an_empty_list(admin, log, query, field, message):
    page = admin.get(url(log), query)
    assert page.status_code == 200
    assert message in " ".join(page.context["filter"].form.errors[field])
    assert page.context["table"].paginator.count == 0  # never the unfiltered log
    assert message in page.content.decode().replace("&quot;", '"')


def test_an_events_detail_shows_before_and_after_as_a_diff(admin, world):
    admin.post(url(world, "org_settings"), {
        "name": "Acme EU", "slug": world.org.slug, "timezone": "UTC",
        "usage_retention_months": 13, "spike_factor": "3",
        "default_workspace": world.org.workspaces.get(is_default=True).pk,
    })  # fmt: skip
    event = AuditEvent.objects.get(action="org.settings_changed")
    page = admin.get(url(world, "audit_event", event.pk))
    assert page.status_code == 200
    text = " ".join(page.content.decode().split())
    assert "admin@example.com changed the settings of Acme EU" in text
    assert '<tr class="table-warning" data-field="name">' in text
    assert "<del>Acme Support</del>" in text and "<ins>Acme EU</ins>" in text
    assert "Audit logging" in text  # the field in words; a boolean as Yes/No
    assert "<del>Yes</del>" in text and "<ins>No</ins>" in text


def test_another_organizations_event_is_not_found(admin, world):
    theirs = record_event(action="workspace.created", organization=world.other_org)
    assert admin.get(url(world, "audit_event", theirs.pk)).status_code == 404
    assert admin.get(url(world, "audit_event", 10**12)).status_code == 404


def test_the_csv_holds_what_is_filtered_streamed_and_spreadsheet_safe(admin, log):
    record_event(action="workspace.renamed", organization=log.org, target_label="=HYPERLINK(1)",
                 before={"name": "a"}, after={"name": "=HYPERLINK(1)"})  # fmt: skip
    response = admin.get(url(log), {"action": "apikey.revoked", "_export": "csv"})
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(streamed(response))))
    assert rows[0] == [
        "time", "actor", "action", "description", "target_type", "target", "target_id",
        "ip_address", "user_agent", "before", "after", "hash", "prev_hash",
    ]  # fmt: skip
    assert [r[5] for r in rows[1:]] == ["Old deploy", "Ancient"]
    assert rows[1][3] == "admin@example.com revoked API key Old deploy"
    assert rows[1][9] == '{"status": "active"}'
    everything = streamed(admin.get(url(log), {"_export": "csv"}))
    assert "'=HYPERLINK(1)" in everything and ",=HYPERLINK" not in everything
    assert "Theirs" not in everything  # another organization's event


def test_the_page_costs_the_same_queries_for_5_or_60_events(admin, world):
    for i in range(5):
        record_event(action="workspace.created", organization=world.org, target_label=f"w{i}")
    admin.get(url(world))
    with CaptureQueriesContext(connection) as few:
        admin.get(url(world))
    for i in range(55):
        record_event(action="workspace.created", organization=world.org, target_label=f"v{i}")
    with CaptureQueriesContext(connection) as many:
        admin.get(url(world))
    assert len(many) == len(few)


# The verifiable export --------------------------------------------------------------------


def export_chain(admin, world, tmp_path):
    response = admin.get(url(world, "audit_export_chain"))
    assert response.streaming
    assert response["Content-Type"].startswith("application/x-ndjson")
    path = tmp_path / "export.jsonl"
    path.write_text(streamed(response))
    return path


def test_the_chain_export_verifies_offline_and_an_edited_line_is_found(
    admin, world, tmp_path, capsys
):
    for i in range(4):
        record_event(action="workspace.renamed", organization=world.org,
                     before={"name": f"a{i}"}, after={"name": f"b{i}"})  # fmt: skip
    record_event(action="workspace.created", organization=world.other_org)
    path = export_chain(admin, world, tmp_path)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["organization"] == world.org.slug
    assert len(lines) == 1 + 4 + 1  # header, our 4 events only, closing line
    call_command("verify_audit_chain", "--file", str(path))
    assert "intact, 4 events of acme-support" in capsys.readouterr().out
    record = json.loads(lines[2])
    record["after"]["name"] = "forged"
    lines[2] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CommandError, match=r"line 3: event .* does not match its hash"):
        call_command("verify_audit_chain", "--file", str(path))


def test_the_export_is_only_for_admins_of_the_organization(client, world):
    client.force_login(world.member.user)
    assert client.get(url(world, "audit_export_chain")).status_code == 403
    client.force_login(world.outsider.user)
    assert client.get(url(world, "audit_export_chain")).status_code == 404


def test_invitation_events_name_the_invited_address(admin, world):
    admin.post(f"/o/{world.org.slug}/members/invite/", {"email": "pat@acme.test", "role": "member"})
    invitation = Invitation.objects.get(email="pat@acme.test")
    admin.post(f"/o/{world.org.slug}/members/invitations/{invitation.pk}/revoke/")
    lines = sentences(admin.get(url(world)))
    assert "revoked the invitation of pat@acme.test" in lines
    assert "invited pat@acme.test as Member" in lines
