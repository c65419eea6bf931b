"""Usage ingestion inside the Celery worker: a worker bootstep that runs the ingestion loop
(`usage.ingest.Consumer`) in `USAGE_INGEST_THREADS` threads of the worker's main process, from
the worker's start to its shutdown (two threads overlap one batch's Python work with another's
database work: bench/bench_ingest.py). Production runs `celery worker` and `celery beat` and nothing
reach the database (docs/decisions/0005-usage-ingestion.md: why a bootstep rather than a drain
task every second). `USAGE_INGEST_IN_WORKER=false` turns it off, for workers on machines that
should not ingest (`manage.py consume_usage` is the alternative).

Registered in console/celery.py. This module imports nothing of Django at import time: the
worker loads it before Django is set up.
"""

from __future__ import annotations

import logging
import threading

from celery import bootsteps

logger = logging.getLogger(__name__)


class UsageIngestion(bootsteps.StartStopStep):
    # After the pool: its processes are forked before this thread exists.
    requires = {"celery.worker.components:Pool"}
    label = "usage ingestion"

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, worker) -> None:
        from django.conf import settings

        if not settings.USAGE_INGEST_IN_WORKER:
            logger.info("Usage ingestion is off in this worker (USAGE_INGEST_IN_WORKER)")
            return
        from usage.ingest import Consumer, consumer_name

        for n in range(settings.USAGE_INGEST_THREADS):
            consumer = Consumer(consumer_name("celery-"))
            thread = threading.Thread(
                target=consumer.run, args=(self.stop_event,), name=f"usage-ingest-{n}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def stop(self, worker) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(15)
        self.threads = []

    def shutdown(self, worker) -> None:
        self.stop(worker)
