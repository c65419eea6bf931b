"""Create an admin key (the Admin API's credential) from the command line. stdout gets the key
and nothing else, for scripts:

    ADMIN_KEY=$(manage.py create_admin_key --org acme --owner admin@acme.test --name Terraform)
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apikeys import services
from members.models import Membership


class Command(BaseCommand):
    help = "Create an admin key for an Admin and print it once (the only output on stdout)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--owner", required=True, help="Email of the Admin who owns it.")
        parser.add_argument("--name", required=True, help="Key name, e.g. Terraform.")

    def handle(self, *args, org, owner, name, **options):
        try:
            membership = Membership.objects.select_related("organization", "user").get(
                organization__slug=org, user__email__iexact=owner
            )
        except Membership.DoesNotExist:
            raise CommandError(f"{owner} is not a member of an organization {org!r}.") from None
        try:
            issued = services.create_admin_key(
                membership=membership,
                name=name,
                actor=None,
                actor_label="manage.py create_admin_key",
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(issued.plaintext)
