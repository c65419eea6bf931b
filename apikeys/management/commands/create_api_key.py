"""Create an API key from the command line. stdout gets the key and nothing else, for scripts:

    KEY=$(manage.py create_api_key --org acme --workspace Production --owner ci@acme.test \\
          --name "CI pipeline" --expires 2026-12-31)
"""

import datetime as dt

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apikeys import services
from members.models import Membership
from orgs.models import Workspace


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--expires takes a date as YYYY-MM-DD, not {value!r}.") from None


class Command(BaseCommand):
    help = "Create an API key and print it once (the only output on stdout)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--workspace", required=True, help="Workspace name.")
        parser.add_argument("--owner", required=True, help="Email of the member who owns it.")
        parser.add_argument("--name", required=True, help="Key name, e.g. Production.")
        parser.add_argument("--expires", help="Last day the key works (YYYY-MM-DD).")

    def handle(self, *args, org, workspace, owner, name, expires, **options):
        expires_on = _date(expires) if expires else None
        try:
            membership = Membership.objects.select_related("organization", "user").get(
                organization__slug=org, user__email__iexact=owner
            )
        except Membership.DoesNotExist:
            raise CommandError(f"{owner} is not a member of an organization {org!r}.") from None
        try:
            chosen = Workspace.objects.get(
                organization=membership.organization, name__iexact=workspace
            )
        except Workspace.DoesNotExist:
            raise CommandError(f"{org} has no workspace named {workspace!r}.") from None
        try:
            issued = services.create_api_key(
                membership=membership,
                workspace=chosen,
                name=name,
                expires_on=expires_on,
                actor=None,
                actor_label="manage.py create_api_key",
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(issued.plaintext)
