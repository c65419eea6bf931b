"""`make run`'s in-process beat (console/background.py): the beat schedule's entries run when
due, by Celery's own schedule objects, once across web processes that share a Redis."""

import datetime as dt
import time

import pytest
from celery.schedules import crontab, schedule

from apikeys import services, verification
from console import background
from console.celery import app
from core import hotpath

pytestmark = pytest.mark.django_db


def test_a_due_entry_runs_its_real_task_once_per_period(world):
    issued = services.create_api_key(
        membership=world.member, workspace=world.workspace, name="Dev", actor=None
    )
    when = int(time.time()) - 30
    hotpath.client().hset(verification.LAST_USED_KEY, str(issued.key.pk), when)
    entries = {"flush": ("apikeys.tasks.flush_key_last_used", schedule(60))}
    last_run = {"flush": app.now() - dt.timedelta(seconds=61)}
    assert background.run_due(entries, last_run) == ["flush"]
    issued.key.refresh_from_db()
    assert issued.key.last_used_at == dt.datetime.fromtimestamp(when, tz=dt.UTC)
    assert background.run_due(entries, last_run) == []  # not due again yet


def test_two_processes_due_at_once_run_it_once(world):
    entries = {"expire": ("members.tasks.expire_invitations", schedule(60))}
    overdue = app.now() - dt.timedelta(seconds=61)
    first, second = {"expire": overdue}, {"expire": overdue}  # each process's own memory
    assert background.run_due(entries, first) == ["expire"]
    assert background.run_due(entries, second) == []  # claimed in the shared Redis
    assert second["expire"] > overdue  # and it waits for the next period too


def test_a_daily_crontab_entry_is_not_due_before_its_hour():
    just_ran = app.now()
    entries = {"daily": ("members.tasks.expire_invitations", crontab(hour=5, minute=30))}
    assert background.run_due(entries, {"daily": just_ran}) == []


def test_every_entry_in_settings_reads_as_a_celery_schedule(settings):
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        remaining = background._as_schedule(entry["schedule"]).remaining_estimate(app.now())
        assert dt.timedelta(0) <= remaining <= dt.timedelta(days=1)
