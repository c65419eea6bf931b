"""`manage.py create_organization --name NAME [--slug SLUG] --admin EMAIL`: how site operators
create organizations when sign-up is by invitation (CONSOLE_SIGNUP=invite). An existing account
at EMAIL becomes the Admin; another address is sent an invitation as Admin (by email only: the
link is never printed)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from console.forms import derive_slug
from core import emails
from members import services as member_services


class Command(BaseCommand):
    help = (
        "Create an organization and make EMAIL its Admin (an invitation if EMAIL has no account)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="The organization's name.")
        parser.add_argument("--slug", help="Its URL slug (/o/<slug>/); derived from the name.")
        parser.add_argument("--admin", required=True, metavar="EMAIL", help="Its first Admin.")

    def handle(self, *args, name, slug, admin, **options):
        slug = slug or derive_slug(name)
        if not slug:
            raise CommandError("No URL slug can be made from this name: give one with --slug.")
        try:
            organization, invitation = member_services.create_organization_for(
                admin_email=admin, name=name, slug=slug
            )
        except ValidationError as error:
            raise CommandError(" ".join(_messages(error))) from None
        url = emails.absolute_url(f"/o/{organization.slug}/")
        self.stdout.write(f"Created {organization.name}: {url}")
        if invitation is None:
            self.stdout.write(f"{admin} is its Admin.")
        else:
            self.stdout.write(
                f"Invitation sent to {invitation.email} as Admin, valid 7 days: the address "
                "signs up (or signs in) from the link in that email."
            )


def _messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [f"{field}: {m}" for field, errors in error.message_dict.items() for m in errors]
    return error.messages
