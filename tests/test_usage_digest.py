"""The weekly digest (the guide's Step 5): Monday morning in the organization's zone, Admins and
Billing-only members get last week's totals by workspace and model with the CSV attached, once a
week however many processes run it; each person may turn it off on their profile."""

import csv
import datetime as dt
import email
import io
import re
import threading

import pytest
from django.core import mail
from django.db import connections

from apikeys.services import create_api_key
from audit.models import AuditEvent
from tests.factories import daily_usage
from tests.test_emails import FlakySMTPServer
from usage import digest
from usage.models import DigestDelivery, Source, UsageDigest

pytestmark = pytest.mark.django_db(transaction=True)

DOLLAR = 1_000_000
# Monday 30 Nov 2026, 06:30 UTC = 07:30 in Berlin: Monday morning there, not yet in UTC.
MONDAY_MORNING_BERLIN = dt.datetime(2026, 11, 30, 6, 30, tzinfo=dt.UTC)
LAST_WEEK = dt.date(2026, 11, 23)
CSV_HEADER = (
    "period_start,workspace,api_key_name,api_key_prefix,model,source,requests,errors,"
    "input_tokens,output_tokens,cache_creation_input_tokens,cache_read_input_tokens,cost_usd"
)


@pytest.fixture
def week(world):
    """Last week's usage of world.org (Berlin): two workspaces, two models, a key, an import."""
    world.org.timezone = "Europe/Berlin"
    world.org.save()
    key = create_api_key(
        membership=world.member, workspace=world.workspace, name="ci", actor=None
    ).key
    default = world.org.workspaces.get(is_default=True)
    sonnet, haiku = "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"
    daily_usage(world.org, LAST_WEEK, 12_345_678, workspace_id=world.workspace.pk,
                api_key_id=key.pk, model=sonnet, requests=40, errors=2, input_tokens=1000,
                output_tokens=500, cache_creation_input_tokens=30, cache_read_input_tokens=70)  # fmt: skip
    daily_usage(world.org, LAST_WEEK + dt.timedelta(days=6), 2 * DOLLAR,
                workspace_id=default.pk, model=haiku, requests=10, input_tokens=10)  # fmt: skip
    daily_usage(world.org, LAST_WEEK + dt.timedelta(days=3), 1 * DOLLAR,
                workspace_id=world.workspace.pk, model=haiku, requests=5)  # fmt: skip
    # Outside the week: the Monday it is sent, and the Sunday before the week.
    daily_usage(world.org, LAST_WEEK + dt.timedelta(days=7), 99 * DOLLAR)
    daily_usage(world.org, LAST_WEEK - dt.timedelta(days=1), 7 * DOLLAR)
    return {"key": key, "default": default}


def test_monday_morning_admins_and_billing_members_get_last_weeks_totals(world, week):
    claimed = digest.send_weekly_digests(now=MONDAY_MORNING_BERLIN)

    assert len(claimed) == 1
    assert UsageDigest.objects.get(pk=claimed[0]).week_start == LAST_WEEK
    assert sorted(m.to[0] for m in mail.outbox) == ["admin@example.com", "finance@example.com"]
    message = mail.outbox[0]
    assert message.subject == "[Console] Acme Support usage, week of 23 Nov – 29 Nov 2026: $15.35"
    body = message.body
    assert "Total cost: $15.35 (the week before: $7.00)" in body
    assert "Requests: 55 (2 errors)" in body
    # By workspace and by model, the most expensive first.
    assert (
        "By workspace:\n  Development: $13.35, 45 requests\n  Default: $2.00, 10 requests" in body
    )
    assert (
        "By model:\n  claude-sonnet-4-5-20250929: $12.35, 40 requests\n"
        "  claude-haiku-4-5-20251001: $3.00, 15 requests"
    ) in body
    assert "/profile/" in body
    html, _ = message.alternatives[0]
    assert '<td style="padding: 2px 12px 2px 0;">Development</td>' in html


def test_the_attached_csv_has_the_weeks_days_with_the_export_header(world, week):
    digest.send_weekly_digests(now=MONDAY_MORNING_BERLIN)

    [(filename, content, mimetype)] = mail.outbox[0].attachments
    assert (filename, mimetype) == ("usage-acme-support-2026-11-23.csv", "text/csv")
    lines = content.splitlines()
    assert lines[0] == CSV_HEADER
    rows = list(csv.DictReader(io.StringIO(content)))
    key = week["key"]
    assert rows[0] == {
        "period_start": "2026-11-23",
        "workspace": "Development",
        "api_key_name": "ci",
        "api_key_prefix": key.prefix,
        "model": "claude-sonnet-4-5-20250929",
        "source": Source.GATEWAY,
        "requests": "40",
        "errors": "2",
        "input_tokens": "1000",
        "output_tokens": "500",
        "cache_creation_input_tokens": "30",
        "cache_read_input_tokens": "70",
        "cost_usd": "12.345678",
    }
    assert [r["period_start"] for r in rows] == ["2026-11-23", "2026-11-26", "2026-11-29"]
    assert sum(int(r["requests"]) for r in rows) == 55
    assert sum(float(r["cost_usd"]) for r in rows) == pytest.approx(15.345678)


@pytest.mark.parametrize(
    "now",
    [
        dt.datetime(2026, 11, 30, 5, 59, tzinfo=dt.UTC),  # 06:59 in Berlin: too early
        dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC),  # Sunday
        dt.datetime(2026, 12, 1, 6, 30, tzinfo=dt.UTC),  # Tuesday
    ],
)
def test_nothing_is_sent_outside_the_organizations_monday_morning(world, week, now):
    assert digest.send_weekly_digests(now=now) == []
    assert mail.outbox == []


def test_each_organization_gets_it_on_its_own_mondays_morning(world, week):
    world.other_org.timezone = "UTC"
    world.other_org.save()
    daily_usage(world.other_org, LAST_WEEK, 5 * DOLLAR)
    digest.send_weekly_digests(now=MONDAY_MORNING_BERLIN)
    assert {m.to[0] for m in mail.outbox} == {"admin@example.com", "finance@example.com"}
    digest.send_weekly_digests(now=MONDAY_MORNING_BERLIN + dt.timedelta(hours=1))  # 07:30 UTC
    assert "outsider@globex.test" in {m.to[0] for m in mail.outbox}


def test_four_racing_processes_send_the_week_once(world, week):
    barrier = threading.Barrier(4)
    claimed, errors = [], []

    def run():
        try:
            barrier.wait()
            claimed.extend(digest.send_weekly_digests(now=MONDAY_MORNING_BERLIN))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(claimed) == 1
    assert sorted(m.to[0] for m in mail.outbox) == ["admin@example.com", "finance@example.com"]
    # Later runs that Monday send nothing more.
    digest.send_weekly_digests(now=MONDAY_MORNING_BERLIN + dt.timedelta(hours=3))
    assert len(mail.outbox) == 2


def test_a_week_without_usage_sends_nothing(world):
    world.org.timezone = "Europe/Berlin"
    world.org.save()
    daily_usage(world.org, LAST_WEEK - dt.timedelta(days=1), 7 * DOLLAR)  # the week before
    assert len(digest.send_weekly_digests(now=MONDAY_MORNING_BERLIN)) == 1
    assert mail.outbox == []
    assert not DigestDelivery.objects.exists()


def digest_box_ticked(page) -> bool:
    [box] = re.findall(r'<input[^>]*name="weekly_digest"[^>]*>', page.content.decode())
    return " checked" in box


def test_a_person_who_turned_it_off_on_their_profile_does_not_get_it(world, week, client_for):
    client = client_for(world.billing)
    page = client.get("/profile/")
    assert page.status_code == 200 and digest_box_ticked(page)

    response = client.post("/profile/", {})  # the box unticked
    assert response.status_code == 302
    assert not digest_box_ticked(client.get("/profile/"))
    [event] = AuditEvent.objects.filter(action="user.notifications_changed")
    assert (event.before, event.after) == ({"weekly_digest": True}, {"weekly_digest": False})
    assert event.actor_id == world.billing.user_id

    digest.send_weekly_digests(now=MONDAY_MORNING_BERLIN)
    assert [m.to for m in mail.outbox] == [["admin@example.com"]]

    client.post("/profile/", {"weekly_digest": "on"})
    assert AuditEvent.objects.filter(action="user.notifications_changed").count() == 2


def test_the_digest_goes_through_a_real_mail_server_with_its_attachment(world, week, settings):
    server = FlakySMTPServer(drops=0)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        digest.send_weekly_digests(now=MONDAY_MORNING_BERLIN)
    finally:
        server.close()

    assert len(server.messages) == 2
    received = email.message_from_string(server.messages[0])
    [attachment] = [part for part in received.walk() if part.get_filename()]
    assert attachment.get_filename() == "usage-acme-support-2026-11-23.csv"
    assert attachment.get_payload(decode=True).decode().splitlines()[0] == CSV_HEADER
    assert DigestDelivery.objects.filter(sent_at__isnull=False).count() == 2
