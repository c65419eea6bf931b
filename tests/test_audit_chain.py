"""Tamper evidence: the database refuses UPDATE, DELETE and TRUNCATE on audit events; each
organization's events form a hash chain that `verify_audit_chain` checks (`--org`), finding the
first broken link and exiting non-zero; exported and archived files verify offline
(`--file`); archiving old events keeps the chain verifiable from the archive's last hash."""

import datetime as dt
import json

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.chain import verify_lines
from audit.models import AuditArchive, AuditEvent
from audit.services import record_event

pytestmark = pytest.mark.django_db


def tamper(sql: str, params=()) -> None:
    """What someone with the table owner's rights can do: switch the trigger off and edit."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


def events(world, n=3, org=None):
    return [
        record_event(action="workspace.renamed", organization=org or world.org,
                     after={"name": f"n{i}"}, before={"name": f"o{i}"})
        for i in range(n)
    ]  # fmt: skip


def test_update_delete_and_truncate_are_refused_by_the_database(world):
    [event] = events(world, 1)
    with pytest.raises(DatabaseError, match="append-only: UPDATE"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="member.removed")
    with pytest.raises(DatabaseError, match="append-only: DELETE"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with (
        pytest.raises(DatabaseError, match="append-only: TRUNCATE"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        # The suite's connections may TRUNCATE (to empty tables between tests); not this one.
        cursor.execute("SET LOCAL console.audit_allow_truncate = 'off'")
        cursor.execute("TRUNCATE audit_auditevent")
    assert AuditEvent.objects.filter(pk=event.pk, action="workspace.renamed").exists()


@pytest.mark.django_db(transaction=True)
def test_a_plain_connection_cannot_truncate_the_log(world):
    events(world, 2)
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"],
        password=settings["PASSWORD"] or None, dbname=settings["NAME"], connect_timeout=5,
    ) as plain:  # fmt: skip
        plain.execute("SET lock_timeout = '5s'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="TRUNCATE refused"):
            plain.execute("TRUNCATE audit_auditevent")
    assert AuditEvent.objects.count() == 2


def test_each_organization_has_its_own_chain(world):
    ours = events(world, 2)
    theirs = events(world, 1, org=world.other_org)
    ours += events(world, 1)
    assert [e.prev_hash for e in ours] == ["", ours[0].hash, ours[1].hash]
    assert theirs[0].prev_hash == ""  # not linked to our events in between
    call_command("verify_audit_chain", "--org", world.org.slug)
    call_command("verify_audit_chain")


def test_an_edited_event_is_found_and_the_command_fails(world, capsys):
    chain = events(world, 3)
    events(world, 2, org=world.other_org)
    tamper(
        'UPDATE audit_auditevent SET after = \'{"name": "forged"}\' WHERE id = %s', [chain[1].pk]
    )
    with pytest.raises(CommandError, match="broken in 1 of 2 chains"):
        call_command("verify_audit_chain")
    err = capsys.readouterr().err
    assert f"event {chain[1].pk}: its content does not match its hash (edited)" in err
    with pytest.raises(CommandError, match=f"chain of {world.org.slug} is broken"):
        call_command("verify_audit_chain", "--org", world.org.slug)
    call_command("verify_audit_chain", "--org", world.other_org.slug)  # the other still holds


def test_a_removed_event_breaks_the_next_link(world, capsys):
    chain = events(world, 3)
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [chain[1].pk])
    with pytest.raises(CommandError):
        call_command("verify_audit_chain", "--org", world.org.slug)
    assert f"event {chain[2].pk}: does not link to the event before it" in capsys.readouterr().err


def test_an_unknown_organization_is_a_clear_error(world):
    with pytest.raises(CommandError, match="No organization with the slug 'nope'"):
        call_command("verify_audit_chain", "--org", "nope")


# Archives ---------------------------------------------------------------------------------


def backdate(event, days):
    tamper(
        "UPDATE audit_auditevent SET created_at = %s WHERE id = %s",
        [timezone.now() - dt.timedelta(days=days), event.pk],
    )


def rehash_all():
    """Backdating edits the events: re-chain them as if recorded then (test set-up only)."""
    from audit.chain import event_hash

    heads = {}
    for event in AuditEvent.objects.order_by("id"):
        event.prev_hash = heads.get(event.organization_id, "")
        event.hash = event_hash(event)
        tamper(
            "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE id = %s",
            [event.prev_hash, event.hash, event.pk],
        )
        heads[event.organization_id] = event.hash


@pytest.fixture
def old_and_new_events(world):
    old = events(world, 3)
    new = events(world, 2)
    for event in old:
        backdate(event, 400)
    rehash_all()
    call_command("verify_audit_chain")
    return old, new


def test_archiving_moves_old_events_to_a_file_and_the_chain_still_verifies(
    world, old_and_new_events, tmp_path, capsys
):
    old, new = old_and_new_events
    cutoff = (timezone.now() - dt.timedelta(days=30)).date().isoformat()
    path = tmp_path / "acme-old.jsonl"
    call_command("archive_audit_events", "--org", world.org.slug, "--before", cutoff,
                 "--output", str(path))  # fmt: skip
    assert "Archived 3 events" in capsys.readouterr().out
    remaining = list(AuditEvent.objects.filter(organization=world.org).order_by("id"))
    assert [e.pk for e in remaining[:2]] == [e.pk for e in new]
    assert remaining[-1].action == "audit.archived"  # recorded, and linked to the chain
    archive = AuditArchive.objects.get(organization=world.org)
    assert (archive.events, archive.through_event_id) == (3, old[-1].pk)
    # The database's chain starts from the archive's last hash and still verifies.
    assert remaining[0].prev_hash == archive.last_hash
    call_command("verify_audit_chain", "--org", world.org.slug)
    # The archive verifies on its own, offline, and ends where the database begins.
    call_command("verify_audit_chain", "--file", str(path))
    out = capsys.readouterr().out
    assert "intact, 3 events of acme-support" in out and archive.last_hash in out
    # New events keep linking.
    events(world, 1)
    call_command("verify_audit_chain", "--org", world.org.slug)


def test_archiving_never_overwrites_and_nothing_old_means_nothing_done(
    world, old_and_new_events, tmp_path, capsys
):
    path = tmp_path / "a.jsonl"
    path.write_text("keep me")
    cutoff = (timezone.now() - dt.timedelta(days=30)).date().isoformat()
    with pytest.raises(CommandError, match="exists: archives are never overwritten"):
        call_command("archive_audit_events", "--org", world.org.slug, "--before", cutoff,
                     "--output", str(path))  # fmt: skip
    assert path.read_text() == "keep me"
    assert AuditEvent.objects.filter(organization=world.org).count() == 5  # nothing deleted
    call_command("archive_audit_events", "--org", world.org.slug, "--before", "2000-01-01",
                 "--output", str(tmp_path / "b.jsonl"))  # fmt: skip
    assert "nothing archived" in capsys.readouterr().out
    assert not (tmp_path / "b.jsonl").exists()
    with pytest.raises(CommandError, match="not a date"):
        call_command("archive_audit_events", "--org", world.org.slug, "--before", "31/12/2020",
                     "--output", str(tmp_path / "c.jsonl"))  # fmt: skip


# Files ------------------------------------------------------------------------------------


@pytest.fixture
def archive_file(world, old_and_new_events, tmp_path):
    path = tmp_path / "archive.jsonl"
    cutoff = (timezone.now() - dt.timedelta(days=30)).date().isoformat()
    call_command("archive_audit_events", "--org", world.org.slug, "--before", cutoff,
                 "--output", str(path))  # fmt: skip
    return path


def edit_line(path, number, change):
    lines = path.read_text().splitlines(keepends=True)
    record = json.loads(lines[number - 1])
    change(record)
    lines[number - 1] = json.dumps(record) + "\n"
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            lambda p: edit_line(p, 3, lambda r: r["after"].update(name="forged")),
            "line 3: event .* content does not match its hash",
        ),
        (
            lambda p: p.write_text(
                "".join(p.read_text().splitlines(True)[:2] + p.read_text().splitlines(True)[3:])
            ),
            "line 3: event .* does not link to the event before it",
        ),
        (
            lambda p: p.write_text("".join(p.read_text().splitlines(True)[:-1])),
            "no closing line: the file was cut short",
        ),
        (
            lambda p: edit_line(p, 1, lambda r: r.update(anchor="0" * 64)),
            "line 2: event .* does not link",
        ),
        (
            lambda p: p.write_text(p.read_text().replace('"events":3', '"events":2')),
            "closing line counts 2 events, the file has 3",
        ),
        (
            lambda p: p.write_text("not json\n" + p.read_text()),
            "line 1: not a console-audit-chain file",
        ),
        (
            lambda p: edit_line(p, 2, lambda r: r.pop("prev_hash")),
            "line 2: the event lacks prev_hash",
        ),
    ],
    ids=["edited", "removed", "cut-short", "anchor", "count", "not-ours", "damaged"],
)
def test_a_tampered_file_is_found_with_the_first_broken_line(archive_file, edit, reason):
    call_command("verify_audit_chain", "--file", str(archive_file))
    edit(archive_file)
    with pytest.raises(CommandError, match=reason):
        call_command("verify_audit_chain", "--file", str(archive_file))


def test_contains_checks_a_hash_noted_from_an_earlier_file(archive_file):
    with archive_file.open() as lines:
        last = verify_lines(lines).last_hash
    call_command("verify_audit_chain", "--file", str(archive_file), "--contains", last)
    with pytest.raises(CommandError, match="holds no event with hash"):
        call_command("verify_audit_chain", "--file", str(archive_file), "--contains", "f" * 64)


def test_an_unreadable_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("verify_audit_chain", "--file", str(tmp_path / "missing.jsonl"))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(CommandError, match="the file is empty"):
        call_command("verify_audit_chain", "--file", str(tmp_path / "empty.jsonl"))
