"""Check the audit log's hash chains, in the database or in an exported file.

    manage.py verify_audit_chain                  every chain in the database
    manage.py verify_audit_chain --org SLUG       one organization's chain
    manage.py verify_audit_chain --file F.jsonl   an export or archive, without the database
        [--contains HASH]                         ...and it holds an event hash noted earlier

Reports the first broken link of each chain and exits non-zero when one is broken.
"""

from pathlib import Path

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from audit.chain import verify_lines
from audit.models import AuditEvent
from audit.selectors import chain_break, chain_ids


class Command(BaseCommand):
    help = "Check that no audit event was edited or removed (hash chains), or check an export."

    def add_arguments(self, parser):
        parser.add_argument("--org", metavar="SLUG", help="Check one organization's chain.")
        parser.add_argument(
            "--file", metavar="PATH", help="Check an exported or archived JSON Lines file."
        )
        parser.add_argument(
            "--contains",
            metavar="HASH",
            action="append",
            default=[],
            help="With --file: the file must hold an event with this hash (one you noted from "
            "an earlier export). May be given more than once.",
        )

    def handle(self, *args, org=None, file=None, contains=(), **options):
        if file:
            return self._check_file(Path(file), contains)
        if contains:
            raise CommandError("--contains goes with --file.")
        if org:
            return self._check_org(org)
        broken = 0
        chains = chain_ids()
        for organization_id in chains:
            found = chain_break(organization_id)
            if found is not None:
                broken += 1
                self.stderr.write(f"{_chain_name(organization_id)}: {found}")
        if broken:
            raise CommandError(f"The audit chain is broken in {broken} of {len(chains)} chains.")
        self.stdout.write(
            f"Audit chain intact: {AuditEvent.objects.count()} events in {len(chains)} chains."
        )

    def _check_org(self, slug: str):
        # By label: audit sits below orgs (README, "Layout") and imports no app.
        Organization = apps.get_model("orgs", "Organization")

        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise CommandError(f"No organization with the slug {slug!r}.")
        found = chain_break(organization.pk)
        if found is not None:
            self.stderr.write(f"{_chain_name(organization.pk)}: {found}")
            raise CommandError(f"The audit chain of {slug} is broken.")
        count = AuditEvent.objects.filter(organization=organization).count()
        self.stdout.write(f"Audit chain of {slug} intact: {count} events.")

    def _check_file(self, path: Path, contains):
        try:
            with path.open(encoding="utf-8", errors="replace") as lines:
                report = verify_lines(lines, keep_hashes=bool(contains))
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror or error}") from error
        if report.broken is not None:
            self.stderr.write(f"{path}: {report.broken}")
            raise CommandError(f"{path} does not verify: {report.broken}")
        missing = [h for h in contains if h not in (report.hashes or set())]
        if missing:
            raise CommandError(
                f"{path} verifies, but holds no event with hash {', '.join(missing)}: events "
                "were removed since you noted it, or it is another organization's log."
            )
        who = f" of {report.organization}" if report.organization else ""
        self.stdout.write(
            f"{path}: intact, {report.events} events{who}.\n"
            f"  first link (anchor): {report.anchor or '(the start of the chain)'}\n"
            f"  last hash:           {report.last_hash or '(no events)'}\n"
            "Keep the last hash somewhere the server cannot change: a later export must "
            "contain it (--contains)."
        )


def _chain_name(organization_id) -> str:
    return (
        "site chain (no organization)"
        if organization_id is None
        else (f"organization {organization_id}")
    )
