import signal
import threading

from django.core.management.base import BaseCommand

from usage.ingest import Consumer, consumer_name, drain


class Command(BaseCommand):
    help = (
        "Ingest usage events from the Redis stream into the database, until stopped (SIGTERM, "
        "Ctrl-C). Celery workers do this already (usage/worker.py); this is the alternative."
    )

    def add_arguments(self, parser):
        parser.add_argument("--consumer", default=None, help="Consumer name (unique per process).")
        parser.add_argument("--once", action="store_true", help="Drain what is there, then exit.")

    def handle(self, *args, consumer, once, **options):
        name = consumer or consumer_name("cli-")
        if once:
            total = drain(consumer=name)
            self.stdout.write(f"Ingested {total} usage events.")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        loop = Consumer(name)
        loop.run(stop)
        self.stdout.write(f"Ingested {loop.handled} usage events.")
