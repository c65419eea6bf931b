import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinLengthValidator,
    MinValueValidator,
    RegexValidator,
)
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


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known time zone (e.g. UTC, Europe/Paris).")


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
    # Billing periods (calendar months), usage days, the weekly digest and every date shown are
    # in this zone.
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    usage_retention_months = models.PositiveSmallIntegerField(
        default=13,
        validators=[MinValueValidator(1), MaxValueValidator(120)],
        help_text="Raw usage events older than this are dropped; hourly and daily totals stay.",
    )
    spike_factor = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("3"),
        validators=[MinValueValidator(Decimal("1.1"))],
        help_text="A day costing more than this many times the trailing 7-day average is a spike.",
    )
    # Off: only security events are recorded (audit/registry.py, ALWAYS_RECORDED).
    audit_logging = models.BooleanField(
        default=True, help_text="Record every change; security events are recorded regardless."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class FormerSlug(models.Model):
    """A slug an organization used before: its old URLs redirect to the current slug, and no
    other organization may take it (that would send old links to someone else)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="former_slugs"
    )
    slug = models.SlugField(max_length=48, unique=True)
    retired_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.slug} (now {self.organization.slug})"


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
