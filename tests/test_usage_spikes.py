"""Spikes (the guide's "anomaly detection"): a day costing more than the organization's spike
factor × the trailing 7-day average is flagged for the organization and for each key, emailed to
the Admins exactly once, audited, and shown to whoever may see that usage."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connections
from django.utils import timezone

from apikeys.services import create_api_key
from audit.models import AuditEvent
from tests.factories import daily_usage
from tests.test_emails import FlakySMTPServer
from usage import spikes
from usage.models import UsageSpike

pytestmark = pytest.mark.django_db(transaction=True)

# 06:00 UTC on Wednesday 18 Nov 2026: "yesterday" is Tuesday 17 Nov in UTC.
NOW = dt.datetime(2026, 11, 18, 6, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 11, 17)
DOLLAR = 1_000_000


def week_of_usage(org, per_day: int, **fields):
    for back in range(1, 8):
        daily_usage(org, DAY - dt.timedelta(days=back), per_day, **fields)


def key_of(membership, workspace, name="ci"):
    return create_api_key(membership=membership, workspace=workspace, name=name, actor=None).key


def test_the_rule_is_over_factor_times_the_trailing_average_in_exact_arithmetic():
    # 7 days of $10 in total: an average of $10/7. Three times that is $4.285714…
    assert not spikes.is_spike(4_285_714, 10 * DOLLAR, Decimal("3"))
    assert spikes.is_spike(4_285_715, 10 * DOLLAR, Decimal("3"))
    assert not spikes.is_spike(10**12, 0, Decimal("3"))  # nothing to compare with


def test_a_day_over_three_times_the_average_is_flagged_and_emailed_to_admins_once(world):
    week_of_usage(world.org, 10 * DOLLAR)
    daily_usage(world.org, DAY, 31 * DOLLAR)

    claimed = spikes.detect_spikes(now=NOW)

    [spike] = UsageSpike.objects.filter(pk__in=claimed)
    assert (spike.organization_id, spike.api_key_id, spike.day) == (world.org.pk, 0, DAY)
    assert (spike.cost_micros, spike.baseline_micros) == (31 * DOLLAR, 10 * DOLLAR)
    [message] = mail.outbox
    assert message.to == ["admin@example.com"]  # Admins only: not Billing-only, not Members
    assert message.subject == (
        "[Console] Usage spike: the organization cost $31.00 on Tuesday 17 November 2026"
    )
    assert "3.1 times its average of $10.00 a day" in message.body
    assert "/o/acme-support/usage/" in message.body
    assert spike.emailed_at == NOW

    # The next hourly runs (and the next day's) flag and send nothing more.
    assert spikes.detect_spikes(now=NOW + dt.timedelta(hours=1)) == []
    assert spikes.detect_spikes(now=NOW + dt.timedelta(hours=2)) == []
    assert len(mail.outbox) == 1
    [event] = AuditEvent.objects.filter(action="usage.spike_flagged")
    assert event.organization_id == world.org.pk
    assert event.after["cost"] == "$31.00" and event.after["day"] == "2026-11-17"


def test_a_day_at_or_under_the_factor_is_not_a_spike(world):
    week_of_usage(world.org, 10 * DOLLAR)
    daily_usage(world.org, DAY, 30 * DOLLAR)  # exactly 3 × the average: not over it
    assert spikes.detect_spikes(now=NOW) == []
    assert mail.outbox == []


def test_the_organizations_spike_factor_is_used(world):
    world.org.spike_factor = Decimal("5")
    world.org.save()
    week_of_usage(world.org, 10 * DOLLAR)
    daily_usage(world.org, DAY, 45 * DOLLAR)
    assert spikes.detect_spikes(now=NOW) == []
    daily_usage(world.org, DAY, 6 * DOLLAR)  # $51 > 5 × $10
    assert len(spikes.detect_spikes(now=NOW)) == 1


def test_a_first_day_of_usage_is_not_a_spike(world):
    daily_usage(world.org, DAY, 500 * DOLLAR)
    assert spikes.detect_spikes(now=NOW) == []


def test_each_key_is_checked_against_its_own_average(world):
    steady = key_of(world.member, world.workspace, "steady")
    jumpy = key_of(world.admin, world.workspace, "jumpy")
    week_of_usage(world.org, 100 * DOLLAR, api_key_id=steady.pk)
    week_of_usage(world.org, 1 * DOLLAR, api_key_id=jumpy.pk)
    daily_usage(world.org, DAY, 100 * DOLLAR, api_key_id=steady.pk)
    daily_usage(world.org, DAY, 20 * DOLLAR, api_key_id=jumpy.pk)  # 20 × its own average

    spikes.detect_spikes(now=NOW)

    # The organization ($120 against $101) is not spiking; the jumpy key is.
    [spike] = UsageSpike.objects.all()
    assert spike.api_key_id == jumpy.pk
    assert spike.key_label == f"jumpy ({jumpy.prefix}…{jumpy.last4})"
    [message] = mail.outbox
    assert f"API key jumpy ({jumpy.prefix}…{jumpy.last4}) cost $20.00" in message.subject


def test_yesterday_is_the_organizations_own_yesterday(world):
    # 06:00 UTC is still the 17th, 22:00, in Los Angeles: its yesterday is the 16th.
    world.org.timezone = "America/Los_Angeles"
    world.org.save()
    for back in range(1, 8):
        daily_usage(world.org, DAY - dt.timedelta(days=back + 1), 10 * DOLLAR)
    daily_usage(world.org, DAY - dt.timedelta(days=1), 40 * DOLLAR)
    daily_usage(world.org, DAY, 400 * DOLLAR)  # the 17th is not over yet there

    [spike_id] = spikes.detect_spikes(now=NOW)
    assert UsageSpike.objects.get(pk=spike_id).day == DAY - dt.timedelta(days=1)


def test_four_racing_detectors_flag_and_email_each_spike_once(world):
    key = key_of(world.admin, world.workspace)
    week_of_usage(world.org, 10 * DOLLAR, api_key_id=key.pk)
    daily_usage(world.org, DAY, 90 * DOLLAR, api_key_id=key.pk)
    barrier = threading.Barrier(4)
    claimed, errors = [], []

    def run():
        try:
            barrier.wait()
            claimed.extend(spikes.detect_spikes(now=NOW))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(claimed) == sorted(UsageSpike.objects.values_list("pk", flat=True))
    assert len(claimed) == 2  # the organization and the key
    assert sorted(m.subject.split(":")[1].split(" cost")[0] for m in mail.outbox) == sorted(
        [" the organization", f" API key ci ({key.prefix}…{key.last4})"]
    )
    assert AuditEvent.objects.filter(action="usage.spike_flagged").count() == 2


@pytest.fixture
def smtp_server(settings):
    servers = []

    def start(drops: int) -> FlakySMTPServer:
        server = FlakySMTPServer(drops=drops)
        servers.append(server)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        return server

    yield start
    for server in servers:
        server.close()


def test_a_spike_whose_email_failed_is_sent_by_a_later_run_and_only_then(world, smtp_server):
    week_of_usage(world.org, 10 * DOLLAR)
    daily_usage(world.org, DAY, 50 * DOLLAR)
    smtp_server(drops=100)  # the mail server is down

    [spike_id] = spikes.detect_spikes(now=NOW)
    spike = UsageSpike.objects.get(pk=spike_id)
    assert spike.emailed_at is None and spike.email_attempts == 1
    assert "SMTPServerDisconnected" in spike.last_error

    server = smtp_server(drops=0)  # back up
    assert spikes.detect_spikes(now=NOW + dt.timedelta(hours=1)) == []
    [received] = server.messages
    assert "Subject: [Console] Usage spike: the organization cost $50.00" in received
    assert "To: admin@example.com" in received
    spikes.detect_spikes(now=NOW + dt.timedelta(hours=2))
    assert len(server.messages) == 1
    spike.refresh_from_db()
    assert spike.emailed_at == NOW + dt.timedelta(hours=1)


def test_a_member_sees_the_spikes_of_their_own_keys_only(world):
    own = key_of(world.member, world.workspace, "mine")
    other = key_of(world.admin, world.workspace, "theirs")
    for key in (own, other):
        week_of_usage(world.org, 1 * DOLLAR, api_key_id=key.pk)
        daily_usage(world.org, DAY, 10 * DOLLAR, api_key_id=key.pk)
    spikes.detect_spikes(now=NOW)

    seen = {
        role: {s.api_key_id for s in spikes.recent_spikes(world.membership(role), today=DAY)}
        for role in ("admin", "billing", "member")
    }
    assert seen["admin"] == seen["billing"] == {0, own.pk, other.pk}
    assert seen["member"] == {own.pk}
    assert spikes.recent_spikes(world.outsider, today=DAY) == []


def test_the_usage_page_shows_the_spikes_each_person_may_see(world, client_for):
    # The page shows the last 14 days' spikes as of today: yesterday's, by the real clock.
    now = timezone.now()
    day = now.date() - dt.timedelta(days=1)
    own = key_of(world.member, world.workspace, "mine")
    for back in range(1, 8):
        daily_usage(world.org, day - dt.timedelta(days=back), 1 * DOLLAR, api_key_id=own.pk)
    daily_usage(world.org, day, 10 * DOLLAR, api_key_id=own.pk)
    spikes.detect_spikes(now=now)
    assert UsageSpike.objects.count() == 2  # the organization and the key

    def notices(membership):
        page = client_for(membership).get(f"/o/{world.org.slug}/usage/?start={day}&end={day}")
        assert page.status_code == 200
        html = page.content.decode()
        return [part.split("</div>")[0] for part in html.split('data-testid="usage-notice">')[1:]]

    admin_notices = notices(world.admin)
    assert len(admin_notices) == 2
    assert f"Usage spike on {day:%a %-d %b}:" in admin_notices[0]
    assert (
        "the organization cost $10.00, 10.0 × its 7-day average of $1.00 a day"
        in (admin_notices[0])
    )
    assert f'href="?start={day}&amp;end={day}&amp;key={own.pk}"' in admin_notices[1]
    member_notices = notices(world.member)
    assert len(member_notices) == 1 and "API key mine" in member_notices[0]


def test_an_imported_key_spikes_under_its_anthropic_name(world):
    from usage.models import ImportedName, Source

    name = ImportedName.objects.create(
        organization=world.org, kind=ImportedName.Kind.API_KEY, anthropic_id="apikey_01X",
        name="batch-jobs",
    )  # fmt: skip
    week_of_usage(world.org, 1 * DOLLAR, api_key_id=name.local_id, source=Source.IMPORTED)
    daily_usage(world.org, DAY, 5 * DOLLAR, api_key_id=name.local_id, source=Source.IMPORTED)

    spikes.detect_spikes(now=NOW)

    spike = UsageSpike.objects.get(api_key_id=name.local_id)
    assert spike.key_label == "batch-jobs (Anthropic)"
    assert [n["url"] for n in spikes.notices_for(world.admin, today=DAY)] == [
        f"?start={DAY}&end={DAY}"  # the organization's; the imported key has no key filter
    ] * 2
