from django.conf import settings
from django.core.validators import MaxLengthValidator, MinLengthValidator, RegexValidator
from django.db import models
from django.db.models.functions import Lower

# Paths an organization slug could shadow or be confused with.
RESERVED_SLUGS = frozenset(
    {"new", "admin", "api", "v1", "accounts", "static", "media", "o", "orgs", "settings",
     "console", "www", "help", "support", "login", "logout", "signup", "anthropic"}
)  # fmt: skip

slug_validators = [
    MinLengthValidator(3),
    MaxLengthValidator(48),
    RegexValidator(
        r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
        "Use lowercase letters, digits and single hyphens; start and end with a letter or digit.",
    ),
]


def default_member_limit() -> int:
    return settings.CONSOLE_DEFAULT_MEMBER_LIMIT


class Organization(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=48, unique=True, validators=slug_validators)
    member_limit = models.PositiveIntegerField(
        default=default_member_limit,
        help_text="Members plus pending invitations. Raise it here for an organization that asks.",
    )
    require_mfa = models.BooleanField(
        default=False, help_text="Members must set up two-factor authentication to enter."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Workspace(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="workspaces"
    )
    name = models.CharField(max_length=64)
    is_default = models.BooleanField(default=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                "organization",
                Lower("name"),
                name="workspace_name_unique_in_org",
                violation_error_message="A workspace with this name already exists.",
            ),
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(is_default=True),
                name="one_default_workspace_per_org",
            ),
            models.CheckConstraint(
                condition=~models.Q(is_default=True, archived_at__isnull=False),
                name="default_workspace_not_archived",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None
