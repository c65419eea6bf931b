"""Every periodic task in the beat schedule names a task that exists."""

from django.conf import settings

from console.celery import app


def test_every_scheduled_task_is_registered():
    app.loader.import_default_modules()
    missing = [
        entry["task"]
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] not in app.tasks
    ]
    assert not missing, f"Scheduled but not registered: {missing}"
