import factory
from allauth.account.models import EmailAddress

from members.models import Membership, Role, User
from orgs.models import Organization, Workspace

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified_email(self, create, extracted, **kwargs):
        if create:
            self.save()
            EmailAddress.objects.create(user=self, email=self.email, verified=True, primary=True)


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")

    @factory.post_generation
    def default_workspace(self, create, extracted, **kwargs):
        if create:
            Workspace.objects.create(organization=self, name="Default", is_default=True)


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Workspace {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


def daily_usage(organization, day, cost_micros: int, *, workspace_id=0, api_key_id=0,
                model="claude-haiku-4-5-20251001", requests=1, **counters):  # fmt: skip
    """Usage added to a rollup row (organization-local day) and to its month's, as ingestion's
    upserts do."""
    from django.db.models import F

    from usage.models import UsageDaily, UsageMonthly

    found = None
    for model_class, bucket in ((UsageDaily, {"day": day}),
                                (UsageMonthly, {"month": day.replace(day=1)})):  # fmt: skip
        row, created = model_class.objects.get_or_create(
            organization_id=getattr(organization, "pk", organization), **bucket,
            workspace_id=workspace_id or 0, api_key_id=api_key_id or 0, model=model,
            defaults={"requests": requests, "cost_micros": cost_micros, **counters},
        )  # fmt: skip
        if not created:
            model_class.objects.filter(pk=row.pk).update(
                requests=F("requests") + requests, cost_micros=F("cost_micros") + cost_micros
            )
        found = found or row
    return found


def hourly_usage(organization, hour, cost_micros: int, *, workspace_id=0, api_key_id=0,
                 model="claude-haiku-4-5-20251001", requests=1):  # fmt: skip
    from django.db.models import F

    from usage.models import UsageHourly

    row, created = UsageHourly.objects.get_or_create(
        organization_id=getattr(organization, "pk", organization), hour=hour,
        workspace_id=workspace_id or 0, api_key_id=api_key_id or 0, model=model,
        defaults={"requests": requests, "cost_micros": cost_micros},
    )  # fmt: skip
    if not created:
        UsageHourly.objects.filter(pk=row.pk).update(
            requests=F("requests") + requests, cost_micros=F("cost_micros") + cost_micros
        )
    return row
