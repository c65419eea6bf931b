"""Billing: spending limits and their alerts, prepaid credits, payment methods, invoices.

Money is integer micro-dollars (1 USD = 1,000,000) everywhere it is computed or summed; invoices
also hold whole cents for what they print (see billing/invoicing.py for how lines round).

A billing period is a calendar month in the organization's time zone (`Organization.timezone`);
`period_start` columns hold its first day, as a date of that zone.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from orgs.models import Organization, Workspace

MICROS_PER_DOLLAR = 1_000_000
DEFAULT_THRESHOLDS = (50, 80, 100)


def default_thresholds() -> list[int]:
    return list(DEFAULT_THRESHOLDS)


class LimitScope(models.TextChoices):
    ORGANIZATION = "organization", "Organization"
    WORKSPACE = "workspace", "Workspace"
    API_KEY = "api_key", "API key"


class SpendLimit(models.Model):
    """A monthly spending cap for an organization, one of its workspaces or one API key.

    The gateway reserves each request's maximum cost against every enabled limit that applies
    to it (key, workspace, organization) and refuses the request when any of them is reached
    (billing/spend.py). After each usage ingestion batch the period's spend is compared with
    `threshold_percents`, and each threshold crossed is emailed once per period
    (billing/alerts.py). `version` grows with every change: an edit made from a stale form is
    refused instead of overwriting a newer one.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="spend_limits"
    )
    scope = models.CharField(
        max_length=16, choices=LimitScope.choices, default=LimitScope.ORGANIZATION
    )
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, null=True, blank=True, related_name="spend_limits"
    )
    api_key = models.ForeignKey(
        "apikeys.ApiKey",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="spend_limits",
    )
    monthly_cap_micros = models.PositiveBigIntegerField()
    enabled = models.BooleanField(default=True)
    threshold_percents = models.JSONField(default=default_thresholds)
    # "Admins and Billing-only members" of the organization, plus any extra addresses.
    notify_billing_members = models.BooleanField(default=True)
    extra_recipients = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["organization", "scope", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(scope="organization", workspace__isnull=True, api_key__isnull=True)
                    | Q(scope="workspace", workspace__isnull=False, api_key__isnull=True)
                    | Q(scope="api_key", workspace__isnull=True, api_key__isnull=False)
                ),
                name="spend_limit_scope_matches_target",
            ),
            models.CheckConstraint(
                condition=Q(monthly_cap_micros__gt=0), name="spend_limit_cap_positive"
            ),
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(scope="organization"),
                name="one_spend_limit_per_organization",
            ),
            models.UniqueConstraint(
                fields=["workspace"],
                condition=Q(scope="workspace"),
                name="one_spend_limit_per_workspace",
            ),
            models.UniqueConstraint(
                fields=["api_key"], condition=Q(scope="api_key"), name="one_spend_limit_per_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.target_label} cap {self.monthly_cap_micros / MICROS_PER_DOLLAR:,.2f} USD"

    @property
    def target_label(self) -> str:
        if self.scope == LimitScope.WORKSPACE:
            return f"Workspace {self.workspace.name}"
        if self.scope == LimitScope.API_KEY:
            return f"API key {self.api_key.name} ({self.api_key.display})"
        return f"Organization {self.organization.name}"

    @property
    def thresholds(self) -> list[int]:
        return sorted(int(t) for t in self.threshold_percents or ())


class AlertStatus(models.TextChoices):
    PENDING = "pending", "Sending"
    SENT = "sent", "Sent"
    # A threshold added (or a cap lowered) while spend already stood above it: recorded so it
    # never fires for this period, since it was not crossed by spending.
    PASSED_BEFORE_SET = "passed_before_set", "Already passed when set"


class SpendAlert(models.Model):
    """The claim of one threshold of one limit in one period: the unique constraint is what makes
    each alert go out once however many evaluators race (INSERT … ON CONFLICT DO NOTHING)."""

    limit = models.ForeignKey(SpendLimit, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateField()
    threshold = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20, choices=AlertStatus.choices)
    crossed_at = models.DateTimeField()
    spend_micros = models.BigIntegerField()
    cap_micros = models.BigIntegerField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-crossed_at", "-threshold"]
        constraints = [
            models.UniqueConstraint(
                fields=["limit", "period_start", "threshold"], name="one_alert_per_threshold"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.limit} {self.threshold}% {self.period_start:%Y-%m}"


class AlertDelivery(models.Model):
    """One recipient of an alert. Created with the claim; `sent_at` is set once the mail server
    accepted the message, so a retry sends only what is still unsent."""

    alert = models.ForeignKey(SpendAlert, on_delete=models.CASCADE, related_name="deliveries")
    email = models.EmailField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "email"], name="one_delivery_per_recipient")
        ]

    def __str__(self) -> str:
        return f"{self.alert} to {self.email}"


# -- prepaid credits -----------------------------------------------------------------------------


class CreditAccount(models.Model):
    """Prepaid credits of an organization (optional). While `enabled`, the gateway refuses the
    organization's requests once usage has eaten the balance.

    The balance is kept as a window: since `window_started_at` (set when prepaid mode is
    switched on) it is `opening_micros + credited_micros − usage cost since then`. Usage is
    read from the rollups (and the raw events of the window's first partial hour), so
    "usage deducts" without a write per request; the gateway holds the same sum in a Redis
    counter against a cap of `opening + credited` (billing/spend.py).
    """

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="credit_account"
    )
    enabled = models.BooleanField(default=False)
    window_started_at = models.DateTimeField(null=True, blank=True)
    opening_micros = models.BigIntegerField(default=0)
    credited_micros = models.BigIntegerField(default=0)
    # Balance carried while prepaid mode is off (the next window opens with it).
    carried_micros = models.BigIntegerField(default=0)
    auto_recharge = models.BooleanField(default=False)
    recharge_threshold_micros = models.BigIntegerField(default=0)
    recharge_amount_micros = models.BigIntegerField(default=0)
    # True once the balance was seen below the threshold (and a recharge claimed for that
    # crossing); back to False when the balance is seen at or above it again.
    below_threshold = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Credits of {self.organization}"

    @property
    def window_cap_micros(self) -> int:
        return self.opening_micros + self.credited_micros


class CreditKind(models.TextChoices):
    GRANT = "grant", "Grant"
    RECHARGE = "recharge", "Auto-recharge"


class CreditTransaction(models.Model):
    account = models.ForeignKey(
        CreditAccount, on_delete=models.CASCADE, related_name="transactions"
    )
    kind = models.CharField(max_length=16, choices=CreditKind.choices)
    amount_micros = models.BigIntegerField()
    memo = models.CharField(max_length=200, blank=True, default="")
    charge = models.OneToOneField(
        "Charge", on_delete=models.PROTECT, null=True, blank=True, related_name="credit"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by_label = models.CharField(max_length=254, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount_micros / MICROS_PER_DOLLAR:,.2f} USD"


# -- payment methods and the billing contact ------------------------------------------------------


class BillingProfile(models.Model):
    """Who invoices are addressed to, and the prefix of their numbers."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="billing_profile"
    )
    billing_email = models.EmailField(blank=True, default="")
    legal_name = models.CharField(max_length=200, blank=True, default="")
    address = models.TextField(max_length=500, blank=True, default="")
    tax_id = models.CharField(max_length=40, blank=True, default="")
    invoice_prefix = models.CharField(max_length=12)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Billing contact of {self.organization}"


class PaymentMethodKind(models.TextChoices):
    CARD = "card", "Card"
    INVOICE = "invoice", "Invoicing (bank transfer)"


class CardBrand(models.TextChoices):
    VISA = "visa", "Visa"
    MASTERCARD = "mastercard", "Mastercard"
    AMEX = "amex", "American Express"
    DISCOVER = "discover", "Discover"
    OTHER = "other", "Other"


class PaymentMethod(models.Model):
    """A card (brand, last 4, expiry, holder: never the number) or invoicing. One default per
    organization. Removed methods are kept (charges point at them) with `removed_at` set."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="payment_methods"
    )
    kind = models.CharField(max_length=16, choices=PaymentMethodKind.choices)
    brand = models.CharField(max_length=16, choices=CardBrand.choices, blank=True, default="")
    last4 = models.CharField(max_length=4, blank=True, default="")
    exp_month = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(12)]
    )
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    holder_name = models.CharField(max_length=100, blank=True, default="")
    payment_terms_days = models.PositiveSmallIntegerField(default=30)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-is_default", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(is_default=True),
                name="one_default_payment_method",
            ),
            models.CheckConstraint(
                condition=Q(kind="invoice") | Q(last4__regex=r"^[0-9]{4}$"),
                name="card_has_last4_digits",
            ),
            models.CheckConstraint(
                condition=~Q(is_default=True, removed_at__isnull=False),
                name="removed_payment_method_not_default",
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        if self.kind == PaymentMethodKind.INVOICE:
            return f"Invoicing, net {self.payment_terms_days} days"
        expiry = f"{self.exp_month:02d}/{self.exp_year}"
        return f"{self.get_brand_display()} •••• {self.last4}, expires {expiry}"


class ChargeStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Charge(models.Model):
    """Money asked of a payment method through the payment provider (billing/payments.py): today
    the credit recharges. Its receipt number is gap-free per organization, like invoices'."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="charges")
    payment_method = models.ForeignKey(
        PaymentMethod, on_delete=models.PROTECT, null=True, blank=True, related_name="charges"
    )
    amount_micros = models.BigIntegerField()
    description = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=ChargeStatus.choices)
    provider = models.CharField(max_length=32)
    provider_reference = models.CharField(max_length=100, blank=True, default="")
    receipt_number = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.receipt_number


# -- invoices ---------------------------------------------------------------------------------


class DocumentCounter(models.Model):
    """The last number used per organization, series and year. Taken under a row lock in the
    transaction that issues the document, so numbers have no gaps (a rolled-back issue gives
    its number back)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    series = models.CharField(max_length=16)  # "invoice" or "receipt"
    year = models.PositiveSmallIntegerField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "series", "year"], name="one_counter_per_series_year"
            )
        ]

    def __str__(self) -> str:
        return f"{self.series} {self.year}: {self.last}"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    VOID = "void", "Void"


class Invoice(models.Model):
    """The statement of one organization for one billing period, from the usage rollups."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invoices"
    )
    number = models.CharField(max_length=40, blank=True, default="")
    period_start = models.DateField()
    period_end = models.DateField(help_text="The first day after the period.")
    status = models.CharField(
        max_length=8, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT
    )
    currency = models.CharField(max_length=3, default="USD")
    usage_micros = models.BigIntegerField(default=0, help_text="The rollups' exact total.")
    total_cents = models.BigIntegerField(default=0)
    paid_cents = models.BigIntegerField(default=0)
    bill_to = models.JSONField(default=dict, blank=True)
    payment_method_label = models.CharField(max_length=120, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    due_on = models.DateField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-period_start", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "period_start"], name="one_invoice_per_period"
            ),
            models.UniqueConstraint(
                fields=["organization", "number"],
                condition=~Q(number=""),
                name="invoice_number_unique_in_org",
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | ~Q(number=""), name="issued_invoice_has_number"
            ),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft {self.period_start:%Y-%m}"

    @property
    def due_cents(self) -> int:
        return max(0, self.total_cents - self.paid_cents)


class LineGroup(models.TextChoices):
    MODEL = "model", "By model"
    WORKSPACE = "workspace", "By workspace"


class InvoiceLine(models.Model):
    """One line of an invoice. Both groups add up to the invoice's total: the charges by model,
    and the same charges allocated by workspace."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    group = models.CharField(max_length=16, choices=LineGroup.choices)
    position = models.PositiveIntegerField()
    description = models.CharField(max_length=200)
    model = models.CharField(max_length=128, blank=True, default="")
    workspace_id = models.BigIntegerField(null=True, blank=True)
    requests = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    amount_micros = models.BigIntegerField()
    amount_cents = models.BigIntegerField()

    class Meta:
        ordering = ["group", "position"]

    def __str__(self) -> str:
        return self.description


class PaymentKind(models.TextChoices):
    CARD = "card", "Card"
    BANK_TRANSFER = "bank_transfer", "Bank transfer"
    CREDITS = "credits", "Prepaid credits"
    OTHER = "other", "Other"


class Payment(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    amount_cents = models.BigIntegerField()
    kind = models.CharField(max_length=16, choices=PaymentKind.choices)
    reference = models.CharField(max_length=100, blank=True, default="")
    received_on = models.DateField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    recorded_by_label = models.CharField(max_length=254, blank=True, default="")

    class Meta:
        ordering = ["-received_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="payment_positive")
        ]

    def __str__(self) -> str:
        return f"{self.amount_cents / 100:,.2f} USD on {self.received_on}"


class SharedUpstreamAllowance(models.Model):
    """An operator's override of `GATEWAY_DEFAULT_UPSTREAM_MONTHLY_CAP` for one organization:
    the monthly cap it gets while it sends its requests through the operator's default upstream
    (GATEWAY_DEFAULT_UPSTREAM_URL/KEY). Edited in the Django admin. Empty cap: no cap."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="shared_upstream_allowance"
    )
    monthly_cap_micros = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Micro-dollars (1 USD = 1,000,000). Leave empty for no cap on the shared "
        "upstream.",
    )
    note = models.CharField(max_length=200, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Shared upstream allowance of {self.organization}"


class IncreaseStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"


class SpendLimitIncreaseRequest(models.Model):
    """A member's request for a higher monthly cap on one of their keys or a workspace they
    use. An Admin or Billing-only member approves it (the new cap is saved as any limit is,
    billing.services.save_spend_limit) or denies it; the requester is emailed either way."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="increase_requests"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    scope = models.CharField(max_length=16, choices=LimitScope.choices)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, null=True, blank=True)
    api_key = models.ForeignKey(
        "apikeys.ApiKey", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    requested_cap_micros = models.PositiveBigIntegerField()
    reason = models.CharField(max_length=500, blank=True, default="")
    status = models.CharField(
        max_length=16, choices=IncreaseStatus.choices, default=IncreaseStatus.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_via = models.CharField(max_length=200, blank=True, default="")  # e.g. an admin key
    approved_cap_micros = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(scope=LimitScope.WORKSPACE, workspace__isnull=False, api_key__isnull=True)
                    | Q(scope=LimitScope.API_KEY, api_key__isnull=False)
                ),
                name="increase_request_names_its_target",
            ),
        ]

    def __str__(self) -> str:
        return f"increase to {self.requested_cap_micros} µ$ ({self.status})"

    @property
    def target_label(self) -> str:
        if self.scope == LimitScope.API_KEY and self.api_key is not None:
            return f"API key {self.api_key.name}"
        return f"workspace {self.workspace.name}" if self.workspace else "—"
