import os
import socket

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from usage.ingest import ingest_batch


class Command(BaseCommand):
    help = "Ingest usage events from the Redis stream into the database (runs until stopped)."

    def add_arguments(self, parser):
        parser.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}")
        parser.add_argument("--once", action="store_true", help="Drain what is there, then exit.")
        parser.add_argument("--block-ms", type=int, default=2000)

    def handle(self, *args, consumer, once, block_ms, **options):
        total = 0
        while True:
            handled = ingest_batch(consumer=consumer, block_ms=None if once else block_ms)
            total += handled
            close_old_connections()
            if once and not handled:
                break
        self.stdout.write(f"Ingested {total} usage stream entries.")
