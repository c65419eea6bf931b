from django.core.management.base import BaseCommand, CommandError

from audit.models import AuditEvent
from audit.selectors import broken_links


class Command(BaseCommand):
    help = "Check that no audit event was edited or removed (hash chain)."

    def handle(self, *args, **options):
        problems = list(broken_links())
        for event_id, reason in problems:
            self.stderr.write(f"event {event_id}: {reason}")
        if problems:
            raise CommandError(f"The audit chain is broken in {len(problems)} place(s).")
        self.stdout.write(f"Audit chain intact: {AuditEvent.objects.count()} events.")
