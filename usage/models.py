from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

# A request's tokens, all kinds (the "largest requests by tokens" order; indexed below).
TOKENS = (
    F("input_tokens")
    + F("output_tokens")
    + F("cache_creation_input_tokens")
    + F("cache_read_input_tokens")
)
# A request answered with a non-2xx (the rollups' `errors`; indexed below).
FAILED = Q(status__lt=200) | Q(status__gt=299)
# What the failed-request indexes carry besides their keys: what error types count and filter.
FAILED_INCLUDE = ["status", "error_type", "model"]

NOT_NEGATIVE = [MinValueValidator(0)]


class UsageEvent(models.Model):
    """One gateway request, as metered. Written only by ingestion (usage/ingest.py), never on the
    request path.

    Identified by (`request_id`, `created_at`): on PostgreSQL the table is partitioned by month of
    `created_at` (usage/partitions.py) and a unique key must hold the partition key. `created_at`
    is the gateway's own timestamp, carried in the event, so a replayed event has the same one,
    lands in the same partition and is refused as a duplicate there, even at 23:59:59.9 on the
    last day of a month (docs/decisions/0005-usage-ingestion.md).

    Organization, workspace and key are plain ids, not foreign keys: events are append-only
    history at high volume, they must outlive a deleted key or workspace, and ingestion must not
    pay for constraint checks.
    """

    pk = models.CompositePrimaryKey("request_id", "created_at")
    request_id = models.CharField(max_length=64)
    upstream_request_id = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField()
    organization_id = models.BigIntegerField()
    workspace_id = models.BigIntegerField(null=True)
    api_key_id = models.BigIntegerField(null=True)
    endpoint = models.CharField(max_length=32, default="messages")
    model = models.CharField(max_length=128, blank=True, default="")
    stream = models.BooleanField(default=False)
    status = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=64, blank=True, default="")
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cache_creation_input_tokens = models.PositiveBigIntegerField(default=0)
    # Of cache_creation_input_tokens, those written with the 1-hour TTL (priced higher).
    cache_creation_1h_input_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_input_tokens = models.PositiveBigIntegerField(default=0)
    # usage.server_tool_use as Anthropic reports it; code execution time where reported.
    web_search_requests = models.PositiveBigIntegerField(default=0)
    web_fetch_requests = models.PositiveBigIntegerField(default=0)
    code_execution_seconds = models.PositiveBigIntegerField(default=0)
    service_tier = models.CharField(max_length=32, blank=True, default="")
    cost_micros = models.BigIntegerField(default=0, help_text="Integer micro-dollars, all in.")
    server_tool_cost_micros = models.BigIntegerField(
        default=0, help_text="Of cost_micros, what server tools (web search, ...) cost."
    )
    fallback_priced = models.BooleanField(
        default=False, help_text="The model had no price row: priced at the fallback price."
    )
    latency_ms = models.FloatField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["organization_id", "created_at"], name="usage_event_org_time"),
            # The dashboard's reads of raw events (docs/decisions/0012): the largest requests of
            # a period walk these in order and stop after a page of rows within the period,
            # rather than sorting every event of the period; the failed requests are a few.
            models.Index(fields=["organization_id", "-cost_micros"], name="usage_event_org_cost"),
            models.Index(F("organization_id"), TOKENS.desc(), name="usage_event_org_tokens"),
            # The failed requests of a period, read backwards; their error types are counted
            # from these indexes alone (include: the model filter too), among the most recent
            # failures (selectors.error_types, decision 0012).
            models.Index(
                fields=["organization_id", "created_at"],
                include=FAILED_INCLUDE,
                condition=FAILED,
                name="usage_event_org_failed_types",
            ),
            # The failed requests of one key or one workspace (a filter; a Member's own keys):
            # that key's failed rows of the period, rather than every failed row of the
            # organization fetched and checked (a key that never failed read them all: 80 to
            # 170 ms on bench_dashboard's 31 days, decision 0012). Partial: a few % of the rows.
            models.Index(
                fields=["organization_id", "api_key_id", "created_at"],
                include=FAILED_INCLUDE,
                condition=FAILED,
                name="usage_event_key_failed_types",
            ),
            models.Index(
                fields=["organization_id", "workspace_id", "created_at"],
                include=FAILED_INCLUDE,
                condition=FAILED,
                name="usage_event_ws_failed_types",
            ),
        ]

    def __str__(self) -> str:
        return self.request_id


class ModelPrice(models.Model):
    """Prices per million tokens for a model id or a family prefix, from a date on.

    `model` matches a request's model by exact id or as a prefix (`claude-sonnet-4-5` prices
    `claude-sonnet-4-5-20250929`); the longest match wins, then the latest `effective_from` not
    after the request's time. See usage/pricing.py.
    """

    model = models.CharField(max_length=128)
    effective_from = models.DateTimeField()
    input_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, validators=NOT_NEGATIVE)
    output_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, validators=NOT_NEGATIVE)
    cache_write_per_mtok = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        validators=NOT_NEGATIVE,
        help_text="5-minute cache writes (1.25 × input).",
    )
    cache_write_1h_per_mtok = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        validators=NOT_NEGATIVE,
        help_text="1-hour cache writes (2 × input).",
    )
    cache_read_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, validators=NOT_NEGATIVE
    )
    # Server tools, priced per use as Anthropic prices them (anthropic.com/pricing): web search
    # $10 per 1,000 searches, web fetch at no charge beyond its tokens, code execution $0.05
    # per container-hour (the daily free hours are not deducted: usage/pricing.py).
    web_search_per_1k = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        validators=NOT_NEGATIVE,
        default=Decimal(10),
        help_text="Per 1,000 web searches.",
    )
    web_fetch_per_1k = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        validators=NOT_NEGATIVE,
        default=Decimal(0),
        help_text="Per 1,000 web fetches.",
    )
    code_execution_per_hour = models.DecimalField(
        max_digits=12, decimal_places=6, validators=NOT_NEGATIVE, default=Decimal("0.05"),
        help_text="Per hour of code execution.",
    )  # fmt: skip

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "effective_from"], name="model_price_unique_from"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} from {self.effective_from:%Y-%m-%d}"


class Source(models.TextChoices):
    GATEWAY = "gateway", "Gateway"
    IMPORTED = "imported", "Imported"  # pulled from Anthropic's Admin API usage report


class UsageTotals(models.Model):
    """The counters a rollup row holds, for one bucket × organization × workspace × key × model ×
    source. Written only by ingestion (and the Admin-API import, and repricing), always by an
    upsert that adds the counters of events actually inserted, so a replayed batch adds nothing.

    `workspace_id` / `api_key_id` are 0 when the event named none (a NULL would make the unique
    constraint that the upsert targets treat every such row as distinct). For source "imported"
    they are the local ids that the import gives Anthropic's workspaces and keys.
    """

    organization_id = models.BigIntegerField()
    workspace_id = models.BigIntegerField(default=0)
    api_key_id = models.BigIntegerField(default=0)
    model = models.CharField(max_length=128, default="")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.GATEWAY)
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(
        default=0, help_text="Requests answered with a non-2xx."
    )
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cache_creation_input_tokens = models.PositiveBigIntegerField(
        default=0, help_text="All cache writes, 5-minute and 1-hour."
    )
    cache_creation_1h_input_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_input_tokens = models.PositiveBigIntegerField(default=0)
    web_search_requests = models.PositiveBigIntegerField(default=0)
    web_fetch_requests = models.PositiveBigIntegerField(default=0)
    code_execution_seconds = models.PositiveBigIntegerField(default=0)
    server_tool_cost_micros = models.BigIntegerField(
        default=0, help_text="Of cost_micros, what server tools (web search, ...) cost."
    )
    cost_micros = models.BigIntegerField(default=0, help_text="Integer micro-dollars, all in.")
    fallback_priced_requests = models.PositiveBigIntegerField(
        default=0, help_text="Requests of a model without a price row, priced at the fallback."
    )

    class Meta:
        abstract = True


class UsageHourly(UsageTotals):
    """Usage per UTC hour (`hour` is the start of the hour). Serves ranges of a few days, the
    hourly CSV and anything bounded by instants rather than dates."""

    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization_id", "hour", "workspace_id", "api_key_id", "model", "source"],
                name="usage_hourly_unique_bucket",
            ),
        ]
        indexes = [models.Index(fields=["hour"], name="usage_hourly_hour")]

    def __str__(self) -> str:
        return f"org {self.organization_id} {self.hour:%Y-%m-%d %H}h {self.model} {self.source}"


class UsageDaily(UsageTotals):
    """Usage per day of the organization's time zone (`Organization.timezone` when the event was
    ingested). Serves dashboards over weeks and months, billing periods (calendar months in the
    organization's zone), invoices and the daily CSV."""

    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization_id", "day", "workspace_id", "api_key_id", "model", "source"],
                name="usage_daily_unique_bucket",
            ),
        ]
        indexes = [
            models.Index(fields=["day"], name="usage_daily_day"),
            # The models an organization used, for the dashboard's model filter: a skip scan
            # of this index (usage/selectors.py models_used) instead of reading every row.
            models.Index(fields=["organization_id", "model"], name="usage_daily_org_model"),
        ]

    def __str__(self) -> str:
        return f"org {self.organization_id} {self.day} {self.model} {self.source}"


class UsageMonthly(UsageTotals):
    """Usage per month of the organization's time zone: `month` is the first day of the month,
    and a month's row is the sum of the `UsageDaily` rows of its days (same organization,
    workspace, key, model and source) — written in the same transaction as they are, by the
    same writers (ingestion, repricing, the Admin-API import). Serves the breakdown of long
    periods: their whole months read one row per key and model instead of thirty
    (decision 0012)."""

    month = models.DateField(help_text="The first day of the month (organization-local).")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization_id", "month", "workspace_id", "api_key_id", "model",
                        "source"],
                name="usage_monthly_unique_bucket",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"org {self.organization_id} {self.month:%Y-%m} {self.model} {self.source}"


class UsageSpike(models.Model):
    """A day whose cost was over `factor` × the trailing 7-day average, for the organization
    (`api_key_id` 0) or one of its keys (usage/spikes.py).

    The row is the claim: it is inserted with ON CONFLICT DO NOTHING on (organization, key, day),
    so however many workers check the same day, one of them inserts it and only that one is
    told to email; `emailed_at` is set under a row lock once the mail server took the email.
    """

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="usage_spikes"
    )
    api_key_id = models.BigIntegerField(default=0, help_text="0: the whole organization.")
    key_label = models.CharField(max_length=200, blank=True, default="")
    day = models.DateField(help_text="A day of the organization's time zone.")
    cost_micros = models.BigIntegerField()
    baseline_micros = models.BigIntegerField(help_text="The trailing 7 days' average cost.")
    factor = models.DecimalField(max_digits=5, decimal_places=2)
    detected_at = models.DateTimeField()
    emailed_at = models.DateTimeField(null=True, blank=True)
    email_attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-day", "api_key_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "api_key_id", "day"], name="usage_spike_once_per_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.scope_label} {self.day}"

    @property
    def is_organization(self) -> bool:
        return self.api_key_id == 0

    @property
    def scope_label(self) -> str:
        return "the organization" if self.is_organization else f"API key {self.key_label}"

    @property
    def ratio(self):
        from decimal import ROUND_HALF_UP, Decimal

        if not self.baseline_micros:
            return None
        return (Decimal(self.cost_micros) / Decimal(self.baseline_micros)).quantize(
            Decimal("0.1"), rounding=ROUND_HALF_UP
        )


class UsageDigest(models.Model):
    """The weekly digest of one organization for one week (Monday to Sunday in its zone).

    The row is the claim (unique per organization and week, inserted with ON CONFLICT DO
    NOTHING): whichever beat or worker process inserts it creates the deliveries, one per
    recipient, and the week's digest is never claimed again (usage/digest.py)."""

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="usage_digests"
    )
    week_start = models.DateField(help_text="The Monday of the week, in the organization's zone.")
    claimed_at = models.DateTimeField()
    cost_micros = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-week_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "week_start"], name="usage_digest_once_per_week"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} week of {self.week_start}"


class DigestDelivery(models.Model):
    """The weekly digest to one person: sent under a row lock, retried until the mail server
    takes it (`sent_at`)."""

    digest = models.ForeignKey(UsageDigest, on_delete=models.CASCADE, related_name="deliveries")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    email = models.EmailField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["digest", "email"], name="digest_delivery_once"),
        ]

    def __str__(self) -> str:
        return f"{self.digest} to {self.email}"


class NotificationPreference(models.Model):
    """A person's choices about the usage emails they receive (their profile page). No row:
    the defaults."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_notifications"
    )
    weekly_digest = models.BooleanField(
        default=True,
        help_text="Every Monday, last week's usage of the organizations where you are an Admin "
        "or Billing member, with the CSV attached.",
    )

    def __str__(self) -> str:
        return f"{self.user_id}: digest {'on' if self.weekly_digest else 'off'}"


class AnthropicUsageSource(models.Model):
    """An organization's Anthropic Admin API key, from which usage that did not pass through the
    gateway is imported (usage/anthropic_import.py). The key is encrypted at rest like the
    upstream keys (core/crypto.py) and never shown again: only its last four characters.

    `imported_through` is the cursor: the start of the first hour not yet final. Each import
    re-pulls from a little before it (recent hours grow as Anthropic's report catches up) and
    replaces what it re-pulls. A refused key or an unreachable API sets `last_error` and backs
    off (`next_attempt_at`), doubling up to a few hours."""

    organization = models.OneToOneField(
        "orgs.Organization", on_delete=models.CASCADE, related_name="anthropic_usage_source"
    )
    api_key_encrypted = models.TextField()
    key_last4 = models.CharField(max_length=4)
    base_url = models.URLField(default="https://api.anthropic.com")
    created_at = models.DateTimeField(auto_now_add=True)
    imported_through = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Admin API key …{self.key_last4} of {self.organization_id}"


class ImportedName(models.Model):
    """An Anthropic workspace or API key met by the import, and the id the rollups give it.

    Imported rollups carry `-pk` of these rows as `workspace_id` / `api_key_id`: negative, so
    they never meet the ids of the console's own workspaces and keys (see decision 0013)."""

    class Kind(models.TextChoices):
        WORKSPACE = "workspace", "Workspace"
        API_KEY = "api_key", "API key"

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="imported_names"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    anthropic_id = models.CharField(max_length=128)
    name = models.CharField(max_length=200, blank=True, default="")
    hint = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "kind", "anthropic_id"], name="imported_name_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.anthropic_id} ({self.name})"

    @property
    def local_id(self) -> int:
        return -self.pk
