"""`manage.py seed_demo`: the demo organization "Acme Support", one user per role, demo API keys and
30 days of their usage (usage/demo.py, stored through the real ingestion path). Idempotent."""

import time

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from apikeys.models import ApiKey
from apikeys.services import create_api_key
from members import services as member_services
from members.models import Membership, Role, User
from orgs import services as org_services
from orgs.models import Organization
from usage.demo import DemoKey, KeyProfile, seed_usage

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
SONNET, HAIKU, OPUS = "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001", "claude-opus-4-1"
# (owner, workspace, profile): the demo keys and how each is used.
KEYS = [
    ("admin@example.com", "Production", KeyProfile(
        "Support assistant", (SONNET, HAIKU), per_day=70, input_tokens=1_800,
        output_tokens=450, cached_prompt=6_000, error_rate=0.02)),
    ("admin@example.com", "Production", KeyProfile(
        "Ticket triage", (HAIKU,), per_day=100, input_tokens=900, output_tokens=60,
        cached_prompt=2_500, error_rate=0.01)),
    ("admin@example.com", "Testing", KeyProfile(
        "Nightly evals", (OPUS, SONNET), per_day=25, input_tokens=3_000, output_tokens=900,
        error_rate=0.04, nightly=True)),
    ("dev@example.com", "Development", KeyProfile(
        "Dev laptop", (SONNET, HAIKU), per_day=35, input_tokens=2_500, output_tokens=700,
        cached_prompt=4_000, error_rate=0.03)),
    ("dev@example.com", "Development", KeyProfile(
        "Research agent", (SONNET,), per_day=12, input_tokens=5_000, output_tokens=1_200,
        web_searches=1.5, error_rate=0.02)),
]  # fmt: skip
SPIKE_KEY = "Research agent"  # runs away nine days ago: the spike


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
        keys = self._keys(organization, workspaces)
        started = time.monotonic()
        stored, existing = seed_usage(
            organization.pk, organization.timezone, keys, spike_key=SPIKE_KEY
        )
        self.stdout.write(
            f"Demo usage: {stored} requests stored, {existing} there already "
            f"({time.monotonic() - started:.1f} s)."
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

    def _keys(self, organization, workspaces) -> list[DemoKey]:
        """The demo keys, created once (found by owner, workspace and name afterwards)."""
        keys = []
        for email, workspace_name, profile in KEYS:
            membership = Membership.objects.get(organization=organization, user__email=email)
            workspace = workspaces[workspace_name]
            key = ApiKey.objects.filter(
                organization=organization, owner=membership.user, workspace=workspace,
                name=profile.name,
            ).first()  # fmt: skip
            if key is None:
                key = create_api_key(
                    membership=membership, workspace=workspace, name=profile.name, actor=None,
                    actor_label="manage.py seed_demo",
                ).key  # fmt: skip
            keys.append(DemoKey(profile, key.pk, workspace.pk))
        return keys
