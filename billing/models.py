from django.db import models

from orgs.models import Organization


class SpendLimit(models.Model):
    """An organization's monthly spending cap, in integer micro-dollars (1 USD = 1,000,000).

    The gateway reserves each request's maximum cost against it before forwarding and settles
    the actual cost afterwards (billing/spend.py). The billing issue adds thresholds, alerts and
    per-workspace / per-key caps on top.
    """

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="spend_limit"
    )
    monthly_cap_micros = models.PositiveBigIntegerField()
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.organization} cap {self.monthly_cap_micros / 1_000_000:.2f} USD"
