"""`manage.py seed_demo`: the demo organization "Acme Support", one user per role. Idempotent."""

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from members import services as member_services
from members.models import Membership, Role, User
from orgs import services as org_services
from orgs.models import Organization

ORG_NAME = "Acme Support"
ORG_SLUG = "acme-support"
WORKSPACES = ["Development", "Production", "Testing"]
# (email, name, role, workspaces for non-Admins)
USERS = [
    ("admin@example.com", "Ada Admin", Role.ADMIN, []),
    ("dev@example.com", "Devi Developer", Role.MEMBER, ["Default", "Development", "Testing"]),
    ("finance@example.com", "Finn Finance", Role.BILLING, ["Default"]),
]
DEFAULT_PASSWORD = "demo-console-2026"


class Command(BaseCommand):
    help = "Create (or refresh) the demo organization Acme Support with a user of each role."

    def add_arguments(self, parser):
        parser.add_argument("--password", default=DEFAULT_PASSWORD, help="Password for all users.")

    @transaction.atomic
    def handle(self, *args, password: str, **options):
        users = {email: self._user(email, name, password) for email, name, _, _ in USERS}
        admin = users[USERS[0][0]]
        organization = Organization.objects.filter(slug=ORG_SLUG).first()
        if organization is None:
            organization = member_services.create_organization(
                user=admin, name=ORG_NAME, slug=ORG_SLUG
            )
        existing = set(organization.workspaces.values_list("name", flat=True))
        for name in WORKSPACES:
            if name not in existing:
                org_services.create_workspace(organization=organization, actor=admin, name=name)
        workspaces = {w.name: w for w in organization.workspaces.all()}
        for email, _, role, workspace_names in USERS:
            user = users[email]
            if not Membership.objects.filter(organization=organization, user=user).exists():
                member_services.add_member(
                    organization=organization,
                    user=user,
                    role=role,
                    actor=admin,
                    workspaces=[workspaces[n] for n in workspace_names],
                )
        self.stdout.write(self.style.SUCCESS(f'Demo organization "{ORG_NAME}" is ready.'))
        for email, _, role, _ in USERS:
            self.stdout.write(f"  {Role(role).label:<13} {email:<22} password: {password}")

    def _user(self, email: str, name: str, password: str) -> User:
        user, _ = User.objects.get_or_create(email=email, defaults={"name": name})
        user.set_password(password)
        user.save(update_fields=["password"])
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        return user
