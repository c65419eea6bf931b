from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from orgs.models import Organization, Workspace

DEFAULT_BASE_URL = "https://api.anthropic.com"


class UpstreamConfig(models.Model):
    """Where an organization's requests go: the Anthropic API key (encrypted at rest, see
    gateway/crypto.py), base URL and timeout. A row with a workspace overrides the organization's
    row (workspace null) for that workspace's keys."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="upstream_configs"
    )
    workspace = models.ForeignKey(
        Workspace, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    base_url = models.URLField(default=DEFAULT_BASE_URL)
    api_key_encrypted = models.TextField()
    api_key_last4 = models.CharField(max_length=4)
    timeout_seconds = models.PositiveIntegerField(
        default=600, validators=[MinValueValidator(1), MaxValueValidator(3600)]
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(workspace__isnull=True),
                name="one_upstream_per_org",
            ),
            models.UniqueConstraint(
                fields=["organization", "workspace"], name="one_upstream_per_workspace"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.base_url} (…{self.api_key_last4})"


class WorkspacePolicy(models.Model):
    """Gateway rules for one workspace's keys: which models, how many output tokens at most."""

    workspace = models.OneToOneField(
        Workspace, on_delete=models.CASCADE, related_name="gateway_policy"
    )
    allowed_models = models.JSONField(
        default=list,
        blank=True,
        help_text="Model ids or prefixes allowed; empty allows every model.",
    )
    max_tokens_ceiling = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Policy of {self.workspace}"

    def allows(self, model: str) -> bool:
        return not self.allowed_models or any(model.startswith(m) for m in self.allowed_models)
