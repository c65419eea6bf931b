"""The daily key hygiene task (the guide's "rotate every 90 days", "revoke unused keys"): owners are
emailed 7 days before expiry, at 90 days of age and after 30 days unused — each at most once per
key and reason — and expiries are recorded in the audit log once."""

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apikeys import services, verification
from apikeys.models import ApiKey, KeyNotice
from apikeys.tasks import flush_key_last_used, key_hygiene
from audit.models import AuditEvent
from core import hotpath

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.django_db


def issue(membership, name="Development", **fields):
    issued = services.create_api_key(
        membership=membership, workspace=membership.workspaces.first(), name=name, actor=None
    )
    if fields:
        ApiKey.objects.filter(pk=issued.key.pk).update(**fields)
        issued.key.refresh_from_db()
    return issued


def ago(**kwargs):
    return timezone.now() - dt.timedelta(**kwargs)


def ahead(**kwargs):
    return timezone.now() + dt.timedelta(**kwargs)


def test_owner_is_emailed_a_week_before_a_key_expires_once(world, mailoutbox):
    issued = issue(world.member, expires_at=ahead(days=5), last_used_at=ago(hours=1))
    issue(world.member, name="Later", expires_at=ahead(days=10), last_used_at=ago(hours=1))
    assert key_hygiene() == {"expired": 0, "notices": 1}
    [message] = mailoutbox
    assert message.to == ["dev@example.com"]
    assert "expires in 4 days" in message.subject or "expires in 5 days" in message.subject
    assert issued.key.display in message.body
    assert "Development" in message.alternatives[0][0]
    keys_url = f"http://127.0.0.1:8000/o/{world.org.slug}/api-keys/"
    assert f"Your organization's API keys: {keys_url}" in message.body
    assert f'<a href="{keys_url}">' in message.alternatives[0][0]
    assert message.alternatives[0][1] == "text/html"
    assert key_hygiene()["notices"] == 0
    assert len(mailoutbox) == 1


def test_owner_is_reminded_to_rotate_at_90_days_once(world, mailoutbox):
    issue(world.member, created_at=ago(days=91), last_used_at=ago(hours=2))
    issue(world.member, name="Young", created_at=ago(days=89), last_used_at=ago(hours=2))
    key_hygiene()
    key_hygiene()
    [message] = mailoutbox
    assert "Time to rotate" in message.subject and "91 days old" in message.body


def test_owner_is_told_about_a_key_unused_for_30_days_once(world, mailoutbox):
    issue(world.member, name="Idle", created_at=ago(days=60), last_used_at=ago(days=31))
    issue(world.member, name="Never used", created_at=ago(days=31))
    issue(world.member, name="Busy", created_at=ago(days=60), last_used_at=ago(days=1))
    issue(world.member, name="New", created_at=ago(days=2))
    key_hygiene()
    key_hygiene()
    subjects = sorted(m.subject for m in mailoutbox)
    assert subjects == [
        '[Console] Your API key "Idle" has not been used for 30 days',
        '[Console] Your API key "Never used" has not been used for 30 days',
    ]
    assert "has never been used" in next(m.body for m in mailoutbox if "Never" in m.subject)


def test_one_key_can_get_each_reason_once(world, mailoutbox):
    issue(world.member, created_at=ago(days=100), expires_at=ahead(days=3))
    assert key_hygiene()["notices"] == 3
    reasons = set(KeyNotice.objects.values_list("reason", flat=True))
    assert reasons == {"expiring", "aged", "unused"}
    assert key_hygiene()["notices"] == 0 and len(mailoutbox) == 3


def test_revoked_expired_and_rotated_keys_get_no_reminders(world, mailoutbox):
    old = dict(created_at=ago(days=100), expires_at=ahead(days=3))
    revoked = issue(world.member, name="revoked", **old)
    services.revoke_api_key(key=revoked.key, actor=None)
    issue(world.member, name="expired", created_at=ago(days=100), expires_at=ago(days=1))
    rotated = issue(world.member, name="rotated", **old)
    services.rotate_api_key(key=rotated.key, overlap=dt.timedelta(hours=24), actor=None)
    key_hygiene()
    assert mailoutbox == []


def test_the_notice_table_refuses_a_second_notice_for_the_same_reason(world):
    key = issue(world.member).key
    KeyNotice.objects.create(key=key, reason=KeyNotice.Reason.AGED)
    with pytest.raises(IntegrityError), transaction.atomic():
        KeyNotice.objects.create(key=key, reason=KeyNotice.Reason.AGED)
    assert not services.send_key_notice(key=key, reason=KeyNotice.Reason.AGED)


def test_a_notice_that_could_not_be_sent_is_tried_again(world, mailoutbox, monkeypatch):
    issue(world.member, created_at=ago(days=91), last_used_at=ago(hours=1))

    def refuse(self, fail_silently=False):
        raise ConnectionRefusedError("mail server down")

    with monkeypatch.context() as patched:
        patched.setattr(EmailMultiAlternatives, "send", refuse)
        with pytest.raises(ConnectionRefusedError):
            key_hygiene()
    assert not KeyNotice.objects.exists()
    assert key_hygiene()["notices"] == 1 and len(mailoutbox) == 1


def test_expiry_is_recorded_in_the_audit_log_once(world):
    issued = issue(world.member, expires_at=ago(minutes=5))
    issue(world.member, name="Current", expires_at=ahead(days=30))
    assert key_hygiene()["expired"] == 1
    assert key_hygiene()["expired"] == 0
    event = AuditEvent.objects.get(action="apikey.expired")
    assert event.target_id == str(issued.key.pk) and event.actor_label == "system"
    assert event.organization == world.org


def test_flush_task_moves_last_used_stamps_into_the_database(world):
    issued = issue(world.member)
    when = int(time.time()) - 30
    hotpath.client().hset(verification.LAST_USED_KEY, str(issued.key.pk), when)
    assert flush_key_last_used() == 1
    issued.key.refresh_from_db()
    assert issued.key.last_used_at == dt.datetime.fromtimestamp(when, tz=dt.UTC)


def log_text(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()


@pytest.mark.django_db(transaction=True)
def test_the_hygiene_task_runs_on_a_real_celery_worker(world, tmp_path):
    assert settings.REDIS_URL, "needs Redis as the Celery broker"
    issued = issue(world.member, created_at=ago(days=95), last_used_at=ago(hours=1))
    database = connection.settings_dict
    queue = f"apikeys-test-{uuid.uuid4().hex[:8]}"  # no other worker on this Redis takes it
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": (
            f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@{database['HOST']}:"
            f"{database['PORT'] or 5432}/{database['NAME']}"
        ),
        "REDIS_URL": settings.REDIS_URL,
        "EMAIL_URL": "consolemail://",
    }
    log = (tmp_path / "worker.log").open("w+")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "console", "worker", "-Q", queue,
         "--pool", "solo", "--without-heartbeat", "--without-gossip", "--without-mingle",
         "-l", "info"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while " ready." not in log_text(log):
            assert worker.poll() is None, "the worker died:\n" + log_text(log)
            assert time.monotonic() < deadline, "the worker did not start:\n" + log_text(log)
            time.sleep(0.1)
        sent_at = 0.0
        while not KeyNotice.objects.filter(key=issued.key, reason="aged").exists():
            assert worker.poll() is None, "the worker died:\n" + log_text(log)
            assert time.monotonic() < deadline, "no task run in time:\n" + log_text(log)
            if time.monotonic() - sent_at > 5:
                # Sent again if it got lost (other test runs may FLUSHDB this Redis database);
                # the task is idempotent, so a second run changes nothing.
                key_hygiene.apply_async(queue=queue)
                sent_at = time.monotonic()
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    output = log_text(log)
    assert output.count("Time to rotate your API key") == 1  # the email, printed by the worker
    assert issued.key.display in output
    assert issued.plaintext not in output
