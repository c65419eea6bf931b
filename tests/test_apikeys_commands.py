"""`manage.py create_api_key` (prints the key and nothing else) and `manage.py revoke_api_key`."""

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apikeys import services
from apikeys.keyformat import check_key_format
from apikeys.models import ApiKey
from apikeys.verification import Failure, verify_key
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def create(**options):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def test_create_prints_the_key_alone_on_one_line(world):
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    out, _ = create(
        org="acme-support",
        workspace="development",
        owner="DEV@example.com",
        name="CI pipeline",
        expires=tomorrow,
    )
    assert out.endswith("\n") and out.count("\n") == 1
    raw = out.strip()
    assert check_key_format(raw) is None
    result = verify_key(raw)
    assert result.ok and result.context.workspace_id == world.workspace.pk
    key = ApiKey.objects.get()
    assert (key.name, key.owner) == ("CI pipeline", world.member.user)
    assert timezone.localtime(key.expires_at).date().isoformat() == tomorrow
    event = AuditEvent.objects.get(action="apikey.created")
    assert event.actor is None and event.actor_label == "manage.py create_api_key"
    assert raw not in str(event.after)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"org": "nope"}, "not a member"),
        ({"owner": "nobody@example.com"}, "not a member"),
        ({"owner": "outsider@globex.test"}, "not a member"),
        ({"workspace": "Globex Dev"}, "no workspace"),
        ({"workspace": "Default"}, "belong to"),  # the Member is not in it
        ({"owner": "finance@example.com", "workspace": "Default"}, "cannot hold"),
        ({"name": " "}, "Give the key a name"),
        ({"name": "x" * 500}, "at most 100"),
        ({"expires": "2001-01-01"}, "today or a later"),
    ],
)
def test_create_refuses_bad_input_and_makes_nothing(world, options, message):
    values = {
        "org": "acme-support",
        "workspace": "Development",
        "owner": "dev@example.com",
        "name": "CI",
    }
    values.update(options)
    with pytest.raises(CommandError, match=message):
        create(**values)
    assert not ApiKey.objects.exists()


def test_create_refuses_a_malformed_date(world):
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command(
            "create_api_key",
            "--org=acme-support",
            "--workspace=Development",
            "--owner=dev@example.com",
            "--name=CI",
            "--expires=31/12/2030",
        )


@pytest.fixture
def issued(world):
    return services.create_api_key(
        membership=world.member, workspace=world.workspace, name="Leaked", actor=None
    )


def revoke(*args):
    out = io.StringIO()
    call_command("revoke_api_key", *args, stdout=out)
    return out.getvalue()


def test_revoke_by_id(issued):
    out = revoke(str(issued.key.pk))
    assert f"Revoked key {issued.key.pk}" in out and issued.key.display in out
    assert verify_key(issued.plaintext).failure == Failure.REVOKED
    assert AuditEvent.objects.get(action="apikey.revoked").actor_label == "manage.py revoke_api_key"


@pytest.mark.parametrize("separator", ["…", "..."])
def test_revoke_by_what_the_console_displays(issued, separator):
    revoke(f"{issued.key.prefix}{separator}{issued.key.last4}", "--org=acme-support")
    assert verify_key(issued.plaintext).failure == Failure.REVOKED


def test_revoke_a_leaked_key_read_from_stdin(issued, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(issued.plaintext + "\n"))
    out = revoke("--stdin")
    assert issued.plaintext not in out
    assert verify_key(issued.plaintext).failure == Failure.REVOKED


def test_revoke_refuses_unclear_requests(issued, monkeypatch):
    with pytest.raises(CommandError, match="No such API key"):
        revoke("999999")
    for not_an_id in ("²", "99999999999999999999"):  # str.isdigit() says yes to both
        with pytest.raises(CommandError, match="No such API key"):
            revoke(not_an_id)
    with pytest.raises(CommandError, match="No such API key"):
        revoke(str(issued.key.pk), "--org=globex")
    with pytest.raises(CommandError, match="exactly one"):
        revoke()
    monkeypatch.setattr("sys.stdin", io.StringIO(issued.plaintext.upper() + "\n"))
    with pytest.raises(CommandError, match="not a console key"):
        revoke("--stdin")
    assert verify_key(issued.plaintext).ok
    revoke(str(issued.key.pk))
    with pytest.raises(CommandError, match="already revoked"):
        revoke(str(issued.key.pk))
