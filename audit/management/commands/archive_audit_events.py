"""Move old audit events out of the database into a verifiable file.

    manage.py archive_audit_events --org SLUG --before 2025-01-01 --output acme-2024.jsonl
    manage.py archive_audit_events --site --before 2025-01-01 --output site-2024.jsonl

Events recorded before the date (midnight in the organization's time zone; UTC for the site's
chain of sign-ins) are written to the file, which is checked, then deleted. The file verifies on
its own (`verify_audit_chain --file`), and the chain left in the database starts from the file's
last hash, so `verify_audit_chain` still checks it end to end. Keep the file.
"""

import datetime as dt

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from audit.services import archive_chain


class Command(BaseCommand):
    help = "Archive audit events older than a date into a JSON Lines file, keeping the chain."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--org", metavar="SLUG", help="The organization whose events to move.")
        which.add_argument(
            "--site", action="store_true", help="The site's chain (events of no organization)."
        )
        parser.add_argument("--before", required=True, metavar="YYYY-MM-DD")
        parser.add_argument("--output", required=True, metavar="PATH", help="A new file.")

    def handle(self, *args, org=None, site=False, before=None, output=None, **options):
        # By label: audit sits below orgs (README, "Layout") and imports no app.
        Organization = apps.get_model("orgs", "Organization")

        organization = None
        if org:
            organization = Organization.objects.filter(slug=org).first()
            if organization is None:
                raise CommandError(f"No organization with the slug {org!r}.")
        try:
            day = dt.date.fromisoformat(before)
        except ValueError as error:
            raise CommandError(f"--before {before!r} is not a date (YYYY-MM-DD).") from error
        zone = organization.tzinfo if organization else dt.UTC
        cutoff = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
        try:
            archive = archive_chain(organization=organization, before=cutoff, path=output)
        except FileExistsError as error:
            raise CommandError(f"{output} exists: archives are never overwritten.") from error
        except OSError as error:
            raise CommandError(f"Cannot write {output}: {error.strerror or error}") from error
        if archive is None:
            self.stdout.write(f"No audit events before {day}: nothing archived.")
            return
        self.stdout.write(
            f"Archived {archive.events} events (through event {archive.through_event_id}) to "
            f"{output}\n  sha256 {archive.file_sha256}\n  last hash {archive.last_hash}: the "
            "chain in the database now starts from it."
        )
