"""Spending alerts go out exactly once per limit, period and threshold, however many evaluators
race; a new period re-arms them; a failed send is retried without claiming again."""

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.db import connections

from audit.models import AuditEvent
from billing import alerts, services
from billing.models import AlertDelivery, AlertStatus, LimitScope, SpendAlert
from tests.factories import daily_usage

pytestmark = pytest.mark.django_db(transaction=True)

# In the current month: editing a limit claims the thresholds already passed in the period of the
# real now (billing.alerts.mark_passed_thresholds), so usage must be in that period. (A fixed
# date made the mid-period test fail once the calendar left its month.)
NOW = datetime.now(UTC).replace(microsecond=0)
DAY = NOW.date()


def evaluate_concurrently(org_ids, workers=4, now=NOW) -> list[int]:
    barrier = threading.Barrier(workers)
    claimed: list[int] = []
    errors: list[BaseException] = []

    def run():
        try:
            barrier.wait()
            claimed.extend(alerts.evaluate_alerts(organization_ids=org_ids, now=now))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return claimed


def sent() -> Counter:
    return Counter((m.to[0], m.subject) for m in mail.outbox)


def test_four_concurrent_evaluators_send_each_threshold_once(world):
    org_limit = services.save_spend_limit(
        organization=world.org,
        actor=None,
        enabled=True,
        cap_micros=1_000_000_000,
        thresholds=[50, 80, 100],
    )
    ws_limit = services.save_spend_limit(
        organization=world.org,
        actor=None,
        enabled=True,
        cap_micros=100_000_000,
        thresholds=[50, 80, 90],
        scope=LimitScope.WORKSPACE,
        workspace=world.workspace,
        extra_recipients=["cfo@example.org"],
    )
    ids = [world.org.pk]
    steps = [  # (org spend elsewhere, workspace spend) in micro-dollars, cumulative
        (0, 55_000_000),  # workspace 55 %: its 50 %
        (0, 85_000_000),  # workspace 85 %: its 80 %
        (400_000_000, 92_000_000),  # workspace 92 %: its 90 %; org 49.2 %: nothing
        (500_000_000, 95_000_000),  # org 59.5 %: its 50 %
        (850_000_000, 100_000_000),  # org 95 %: its 80 %
        (1_000_000_000, 100_000_000),  # org 110 %: its 100 %
    ]
    done_other = done_ws = 0
    for other, in_ws in steps:
        daily_usage(world.org, DAY, other - done_other)
        daily_usage(
            world.org,
            DAY,
            in_ws - done_ws,
            workspace_id=world.workspace.pk,
            model="claude-sonnet-4-5",
        )
        done_other, done_ws = other, in_ws
        evaluate_concurrently(ids)
    fired = {(a.limit_id, a.threshold) for a in SpendAlert.objects.all()}
    assert fired == {
        (ws_limit.pk, 50),
        (ws_limit.pk, 80),
        (ws_limit.pk, 90),
        (org_limit.pk, 50),
        (org_limit.pk, 80),
        (org_limit.pk, 100),
    }
    assert set(SpendAlert.objects.values_list("status", flat=True)) == {AlertStatus.SENT}
    counts = sent()
    assert len(counts) == len(mail.outbox)  # no (recipient, subject) twice
    # Admins and Billing-only members get every alert; the extra address the workspace's.
    per_recipient = Counter(to for to, _ in counts)
    assert per_recipient == {"admin@example.com": 6, "finance@example.com": 6, "cfo@example.org": 3}
    assert "dev@example.com" not in per_recipient
    subjects = {s for _, s in counts}
    assert any(
        "Workspace Development has spent 90% of its $100.00 monthly limit" in s for s in subjects
    )
    assert any(
        "Organization Acme Support reached its $1,000.00 monthly spending limit" in s
        for s in subjects
    )
    logged = AuditEvent.objects.filter(action="billing.alert_sent", organization=world.org)
    assert logged.count() == 6


def test_a_new_period_re_arms_the_thresholds(world):
    services.save_spend_limit(
        organization=world.org,
        actor=None,
        enabled=True,
        cap_micros=100_000_000,
        thresholds=[50, 80, 100],
    )
    daily_usage(world.org, DAY, 60_000_000)
    assert len(evaluate_concurrently([world.org.pk])) == 1
    assert evaluate_concurrently([world.org.pk]) == []  # same period: nothing more
    next_month = (NOW.replace(day=1) + timedelta(days=32)).replace(day=2, hour=9)
    assert evaluate_concurrently([world.org.pk], now=next_month) == []  # no spend yet
    daily_usage(world.org, next_month.date(), 51_000_000)
    assert len(evaluate_concurrently([world.org.pk], now=next_month)) == 1
    periods = sorted(SpendAlert.objects.values_list("period_start", "threshold"))
    assert periods == [(DAY.replace(day=1), 50), (next_month.date().replace(day=1), 50)]


def test_changing_thresholds_mid_period_fires_only_newly_crossed_ones(world):
    limit = services.save_spend_limit(
        organization=world.org,
        actor=None,
        enabled=True,
        cap_micros=100_000_000,
        thresholds=[50, 80, 100],
    )
    daily_usage(world.org, DAY, 85_000_000)
    alerts.evaluate_alerts(organization_ids=[world.org.pk], now=NOW)
    assert sorted(SpendAlert.objects.values_list("threshold", flat=True)) == [50, 80]
    mail.outbox.clear()
    # 60 % and 70 % were passed long ago; 90 % is not crossed yet.
    services.save_spend_limit(
        organization=world.org,
        actor=None,
        enabled=True,
        cap_micros=100_000_000,
        thresholds=[50, 60, 70, 80, 90],
        expected_version=limit.version,
    )
    alerts.evaluate_alerts(organization_ids=[world.org.pk], now=NOW)
    assert mail.outbox == []
    daily_usage(world.org, DAY, 6_000_000)  # 91 %
    alerts.evaluate_alerts(organization_ids=[world.org.pk], now=NOW)
    assert {m.subject for m in mail.outbox} == {
        "[Console] Organization Acme Support has spent 90% of its $100.00 monthly limit"
    }
    states = dict(SpendAlert.objects.values_list("threshold", "status"))
    assert states == {
        50: "sent",
        60: "passed_before_set",
        70: "passed_before_set",
        80: "sent",
        90: "sent",
    }


def test_a_failed_send_is_retried_without_claiming_again(world, monkeypatch):
    from core import emails

    services.save_spend_limit(
        organization=world.org, actor=None, enabled=True, cap_micros=100_000_000, thresholds=[50]
    )
    daily_usage(world.org, DAY, 70_000_000)
    real_send = emails.send
    failing = {"finance@example.com"}

    def flaky(message):
        if message.to[0] in failing:
            raise ConnectionRefusedError("mail server down")
        real_send(message)

    monkeypatch.setattr(emails, "send", flaky)
    [alert_id] = alerts.evaluate_alerts(organization_ids=[world.org.pk], now=NOW)
    assert [m.to for m in mail.outbox] == [["admin@example.com"]]
    alert = SpendAlert.objects.get(pk=alert_id)
    assert alert.status == AlertStatus.PENDING
    failed = AlertDelivery.objects.get(alert=alert, email="finance@example.com")
    assert failed.sent_at is None and "mail server down" in failed.last_error
    # Evaluating again claims nothing and sends nothing.
    assert alerts.evaluate_alerts(organization_ids=[world.org.pk], now=NOW) == []
    failing.clear()
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert alerts.retry_unsent_alerts(now=later) == 1
    assert sorted(m.to[0] for m in mail.outbox) == ["admin@example.com", "finance@example.com"]
    assert SpendAlert.objects.get(pk=alert_id).status == AlertStatus.SENT
    assert alerts.retry_unsent_alerts(now=later) == 0
    assert len(mail.outbox) == 2
    assert AuditEvent.objects.filter(action="billing.alert_sent").count() == 1


def test_a_disabled_limit_sends_nothing(world):
    services.save_spend_limit(
        organization=world.org, actor=None, enabled=False, cap_micros=100_000_000, thresholds=[50]
    )
    daily_usage(world.org, DAY, 70_000_000)
    assert alerts.evaluate_alerts(organization_ids=[world.org.pk], now=NOW) == []
    assert mail.outbox == []


def test_an_ingested_batch_triggers_the_evaluation(world):
    """What ingestion does after each batch: send `usage_ingested`; billing evaluates."""
    from console.celery import app
    from usage.models import UsageEvent
    from usage.signals import IngestedSpan, usage_ingested

    services.save_spend_limit(organization=world.org, actor=None, enabled=True,
                              cap_micros=100_000_000, thresholds=[50])  # fmt: skip
    daily_usage(world.org, datetime.now(UTC).date(), 60_000_000)
    span = IngestedSpan(world.org.pk, NOW, NOW, 3, 60_000_000)
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True  # as in `make run`; a Celery worker runs it elsewhere
    try:
        usage_ingested.send_robust(sender=UsageEvent, spans=[span], source="imported")
        assert mail.outbox == []  # usage made outside the console is not capped here
        usage_ingested.send_robust(sender=UsageEvent, spans=[span], source="gateway")
    finally:
        app.conf.task_always_eager = eager
    assert {m.to[0] for m in mail.outbox} == {"admin@example.com", "finance@example.com"}
