"""Background work of the web processes when there is no Celery worker or beat (`make run`,
`WEB_RUNS_BACKGROUND_WORK`): daemon threads started by console/asgi.py in each web process.

- The usage stream is ingested into PostgreSQL/SQLite by the loop Celery workers run
  (`usage.ingest.start_background_drain`: the same `Consumer`, in a thread).
- `CELERY_BEAT_SCHEDULE` is run in-process: due times come from Celery's own schedule objects
  (crontab, seconds), so an entry means here what it means under beat; the task runs eagerly in
  this thread. The web processes share one Redis (the stand-in), and each due run is claimed
  there with SET NX until shortly before the next one, so one process runs it.

Production runs `celery worker` (which ingests usage too: usage/worker.py) and `celery beat`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

TICK = 5.0  # seconds between looks at the schedule

_started = False


def start() -> None:
    global _started
    if _started:
        return
    _started = True
    from usage.ingest import start_background_drain

    start_background_drain()
    threading.Thread(target=_beat, name="inprocess-beat", daemon=True).start()


def _as_schedule(value):
    from celery.schedules import schedule

    if isinstance(value, int | float | timedelta):
        return schedule(value)
    return value


def _claim(name: str, hold_seconds: float) -> bool:
    """True for the one process that gets to run this due entry."""
    from core import hotpath

    key = f"{settings.GATEWAY_REDIS_NAMESPACE}inprocess-beat:{name}"
    hold = max(1, int(hold_seconds * 0.9))
    return bool(hotpath.client().set(key, os.getpid(), nx=True, ex=hold))


def run_due(entries: dict, last_run: dict) -> list[str]:
    """Run the entries due since their last run; returns the names run here."""
    from console.celery import app

    app.loader.import_default_modules()  # the apps' tasks modules (once; then a no-op)
    ran = []
    for name, (task, schedule) in entries.items():
        due, _ = schedule.is_due(last_run[name])
        if not due:
            continue
        last_run[name] = app.now()
        hold = schedule.remaining_estimate(last_run[name]).total_seconds()
        try:
            if _claim(name, hold):
                app.tasks[task].apply(throw=True)
                ran.append(name)
        except Exception:
            logger.exception("In-process run of %s failed", task)
    return ran


def _beat() -> None:
    from console.celery import app

    entries = {
        name: (entry["task"], _as_schedule(entry["schedule"]))
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
    }
    last_run = {name: app.now() for name in entries}  # as beat: the first run one period on
    while True:
        time.sleep(TICK)
        try:
            run_due(entries, last_run)
        finally:
            close_old_connections()  # this thread gets no request signals
