"""Usage that did not pass through the gateway: pulled from Anthropic's Admin API with an
organization's Admin API key into the rollups, source "imported" (decision 0013).

    save_admin_key(organization=..., api_key=..., actor=...)    # the import page, audited
    import_usage(source_id, now=...)                             # beat, every 15 minutes

An import reads `GET /v1/organizations/usage_report/messages` in 1-hour buckets grouped by
api_key_id, workspace_id and model, following `next_page`, from a few hours before the cursor
(`imported_through`) to now, and the names of keys and workspaces (`/api_keys`, `/workspaces`).
It is incremental and idempotent: in one transaction, the imported hourly rollups of the hours
it pulled are *replaced* by what it pulled, and the imported daily rollups of the days those
hours touch are rebuilt from the hourly ones, so re-pulling a bucket (Anthropic's recent hours
grow for a while) replaces it and pulling twice stores the same thing.

Each row is priced by the one pricing function (usage/pricing.py) at the bucket's start. The
report has no request counts: imported rows have `requests` 0, tokens and cost only.

Anthropic's workspaces and keys are not the console's: each gets an `ImportedName` row and the
rollups carry `-pk` of it, a negative id that never meets a console key's or workspace's. The
default workspace (reported as null) is an ImportedName too.

A key Anthropic refuses (401/403), or an API that is down or limiting (429, 5xx, network), sets
`last_error` (shown on the import page) and backs off: the next attempt waits 15 minutes, then
doubles up to 6 hours; a success resets it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import record_event
from core import crypto
from orgs.models import Organization

from . import pricing
from .models import (
    AnthropicUsageSource,
    ImportedName,
    Source,
    UsageDaily,
    UsageHourly,
    UsageMonthly,
)
from .signals import IngestedSpan, usage_ingested

if TYPE_CHECKING:  # imported where a request is made: a web process rarely needs httpx
    import httpx

logger = logging.getLogger(__name__)

ANTHROPIC_VERSION = "2023-06-01"
REPORT_PATH = "/v1/organizations/usage_report/messages"
FIRST_IMPORT = dt.timedelta(days=30)
REPULL = dt.timedelta(hours=6)  # Anthropic's report fills recent hours in for a while
PAGE_HOURS = 168  # the 1h report's largest page
FIRST_BACKOFF = dt.timedelta(minutes=15)
MAX_BACKOFF = dt.timedelta(hours=6)
TIMEOUT = 30.0
MAX_PAGES = 200
DEFAULT_WORKSPACE = "default"  # the report's null workspace_id
COUNTERS = (
    "input_tokens", "output_tokens", "cache_creation_input_tokens",
    "cache_creation_1h_input_tokens", "cache_read_input_tokens", "web_search_requests",
    "server_tool_cost_micros", "cost_micros", "fallback_priced_requests",
)  # fmt: skip


class ImportRefused(Exception):
    """Anthropic answered with an error, or could not be reached; the message says which."""


# -- the key ------------------------------------------------------------------------------------


def default_base_url() -> str:
    return settings.USAGE_IMPORT_BASE_URL.rstrip("/")


def key_problem(api_key: str) -> str | None:
    if not api_key.startswith("sk-ant-admin"):
        return (
            "This is not an Admin API key: those start with sk-ant-admin. Create one in "
            "Anthropic's Console under Settings > Admin keys (an ordinary API key cannot read "
            "usage)."
        )
    if len(api_key) < 20 or any(c.isspace() for c in api_key):
        return "This Admin API key is incomplete: paste all of it, without spaces."
    return None


@transaction.atomic
def save_admin_key(*, organization: Organization, api_key: str, actor) -> AnthropicUsageSource:
    """Store (or replace) the organization's Admin API key, encrypted; the next import runs at
    once and starts over from 30 days back (a new key may see another Anthropic organization)."""
    source = AnthropicUsageSource.objects.select_for_update().filter(organization=organization)
    source = source.first()
    replaced = source is not None
    if source is None:
        source = AnthropicUsageSource(organization=organization)
    before = {"api_key": f"…{source.key_last4}"} if replaced else None
    source.api_key_encrypted = crypto.encrypt(api_key)
    source.key_last4 = api_key[-4:]
    source.base_url = default_base_url()
    source.imported_through = None
    source.failures = 0
    source.last_error = ""
    source.next_attempt_at = None
    source.save()
    record_event(
        action="usage.import_key_saved",
        organization=organization,
        actor=actor,
        target=source,
        target_label=f"Anthropic Admin API key …{source.key_last4}",
        before=before,
        after={"api_key": f"…{source.key_last4}"},
    )
    return source


@transaction.atomic
def remove_admin_key(*, source: AnthropicUsageSource, actor) -> None:
    """Forget the key; usage imported so far stays (it happened)."""
    record_event(
        action="usage.import_key_removed",
        organization=source.organization,
        actor=actor,
        target=source,
        target_label=f"Anthropic Admin API key …{source.key_last4}",
        before={"api_key": f"…{source.key_last4}"},
    )
    source.delete()


# -- talking to Anthropic ------------------------------------------------------------------------


class AdminApi:
    def __init__(self, source: AnthropicUsageSource, client: httpx.Client):
        self.source = source
        self.client = client
        self.headers = {
            "x-api-key": crypto.decrypt(source.api_key_encrypted),
            "anthropic-version": ANTHROPIC_VERSION,
        }

    def get(self, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        import httpx

        url = self.source.base_url.rstrip("/") + path
        try:
            response = self.client.get(url, params=params, headers=self.headers, timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            raise ImportRefused(
                f"Anthropic's API at {self.source.base_url} could not be reached "
                f"({type(exc).__name__})."
            ) from None
        if response.status_code == 200:
            try:
                return response.json()
            except ValueError:
                raise ImportRefused("Anthropic's API did not answer JSON.") from None
        raise ImportRefused(self.describe_error(response))

    def describe_error(self, response: httpx.Response) -> str:
        kind, message = "", ""
        try:
            error = response.json().get("error") or {}
            kind, message = str(error.get("type", "")), str(error.get("message", ""))[:200]
        except (ValueError, AttributeError):
            pass
        said = f" ({kind}: {message})" if kind or message else ""
        if response.status_code in (401, 403):
            return (
                f"Anthropic refused the Admin API key ending in …{self.source.key_last4}"
                f"{said}. Check that it is an Admin API key of your Anthropic organization and "
                "that it was not revoked, then save it again."
            )
        if response.status_code == 429:
            return f"Anthropic is limiting requests{said}; the import tries again later."
        return (
            f"Anthropic's API answered {response.status_code}{said}; the import tries again later."
        )

    def listing(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after = None
        for _ in range(MAX_PAGES):
            params = [("limit", "100")] + ([("after_id", after)] if after else [])
            page = self.get(path, params)
            items += page.get("data") or []
            if not page.get("has_more") or not page.get("last_id"):
                break
            after = page["last_id"]
        return items

    def report(self, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
        base = [
            ("starting_at", _iso(start)),
            ("ending_at", _iso(end)),
            ("bucket_width", "1h"),
            ("group_by[]", "api_key_id"),
            ("group_by[]", "workspace_id"),
            ("group_by[]", "model"),
            ("limit", str(PAGE_HOURS)),
        ]
        buckets: list[dict[str, Any]] = []
        page_token = None
        for _ in range(MAX_PAGES):
            page = self.get(REPORT_PATH, base + ([("page", page_token)] if page_token else []))
            buckets += page.get("data") or []
            page_token = page.get("next_page")
            if not page.get("has_more") or not page_token:
                break
        return buckets


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _instant(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)


def _hour_floor(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


# -- the import ---------------------------------------------------------------------------------


def due_sources(now: dt.datetime) -> list[int]:
    from django.db.models import Q

    return list(
        AnthropicUsageSource.objects.filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        ).values_list("pk", flat=True)
    )


def import_due(*, now: dt.datetime | None = None, client: httpx.Client | None = None) -> int:
    """Import every organization whose next attempt is due. Returns how many succeeded."""
    now = now or timezone.now()
    return sum(import_usage(pk, now=now, client=client) for pk in due_sources(now))


def import_usage(
    source_id: int, *, now: dt.datetime | None = None, client: httpx.Client | None = None
) -> bool:
    """Pull and store one organization's usage; False (and a backoff) if Anthropic refused."""
    now = now or timezone.now()
    source = AnthropicUsageSource.objects.select_related("organization").filter(pk=source_id)
    source = source.first()
    if source is None:
        return False
    start = (
        source.imported_through - REPULL
        if source.imported_through
        else _hour_floor(now) - FIRST_IMPORT
    )
    own_client = client is None
    if client is None:
        import httpx

        client = httpx.Client()
    try:
        api = AdminApi(source, client)
        workspaces = api.listing("/v1/organizations/workspaces")
        keys = api.listing("/v1/organizations/api_keys")
        buckets = api.report(start, now)
    except ImportRefused as exc:
        _failed(source.pk, str(exc), now)
        return False
    finally:
        if own_client:
            client.close()
    spans = _store(source.pk, start, now, workspaces, keys, buckets)
    if spans:
        usage_ingested.send_robust(sender=AnthropicUsageSource, spans=spans, source="imported")
    return True


def _failed(source_id: int, message: str, now: dt.datetime) -> None:
    with transaction.atomic():
        source = AnthropicUsageSource.objects.select_for_update().filter(pk=source_id).first()
        if source is None:
            return
        source.failures += 1
        wait = min(FIRST_BACKOFF * 2 ** (source.failures - 1), MAX_BACKOFF)
        source.last_error = message[:500]
        source.last_attempt_at = now
        source.next_attempt_at = now + wait
        source.save(update_fields=["failures", "last_error", "last_attempt_at", "next_attempt_at"])
    logger.warning("Usage import %s failed (retry in %s): %s", source_id, wait, message)


def _names(
    organization: Organization, workspaces: list[dict], keys: list[dict], buckets: list[dict]
) -> tuple[dict[str, int], dict[str, int]]:
    """Local ids (negative) of every Anthropic workspace and key named or met in the report."""
    wanted: dict[tuple[str, str], tuple[str, str]] = {
        (ImportedName.Kind.WORKSPACE, DEFAULT_WORKSPACE): ("Default workspace (Anthropic)", "")
    }
    for workspace in workspaces:
        wanted[(ImportedName.Kind.WORKSPACE, workspace["id"])] = (workspace.get("name") or "", "")
    for key in keys:
        hint = key.get("partial_key_hint") or ""
        wanted[(ImportedName.Kind.API_KEY, key["id"])] = (key.get("name") or "", hint[:64])
    for bucket in buckets:
        for row in bucket.get("results") or ():
            if row.get("api_key_id"):
                wanted.setdefault((ImportedName.Kind.API_KEY, row["api_key_id"]), ("", ""))
            if row.get("workspace_id"):
                wanted.setdefault((ImportedName.Kind.WORKSPACE, row["workspace_id"]), ("", ""))
    existing = {
        (n.kind, n.anthropic_id): n for n in ImportedName.objects.filter(organization=organization)
    }
    for (kind, anthropic_id), (name, hint) in wanted.items():
        found = existing.get((kind, anthropic_id))
        if found is None:
            found, _ = ImportedName.objects.get_or_create(
                organization=organization, kind=kind, anthropic_id=anthropic_id,
                defaults={"name": name, "hint": hint},
            )  # fmt: skip
            existing[(kind, anthropic_id)] = found
        if name and (found.name, found.hint) != (name, hint or found.hint):
            found.name, found.hint = name, hint or found.hint
            found.save(update_fields=["name", "hint"])
    workspace_ids = {a: n.local_id for (k, a), n in existing.items() if k == "workspace"}
    key_ids = {a: n.local_id for (k, a), n in existing.items() if k == "api_key"}
    return workspace_ids, key_ids


def _hourly_rows(
    organization_id: int, buckets: list[dict], workspace_ids: dict, key_ids: dict
) -> dict[tuple, dict[str, int]]:
    rows: dict[tuple, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for bucket in buckets:
        hour = _hour_floor(_instant(bucket["starting_at"]))
        for result in bucket.get("results") or ():
            creation = result.get("cache_creation") or {}
            written_5m = int(creation.get("ephemeral_5m_input_tokens") or 0)
            written_1h = int(creation.get("ephemeral_1h_input_tokens") or 0)
            searches = int((result.get("server_tool_use") or {}).get("web_search_requests") or 0)
            usage = {
                "input_tokens": int(result.get("uncached_input_tokens") or 0),
                "output_tokens": int(result.get("output_tokens") or 0),
                "cache_creation_input_tokens": written_5m + written_1h,
                "cache_creation_1h_input_tokens": written_1h,
                "cache_read_input_tokens": int(result.get("cache_read_input_tokens") or 0),
                "web_search_requests": searches,
            }
            model = result.get("model") or ""
            cost = pricing.cost_of(model, usage, hour, batch=result.get("service_tier") == "batch")
            workspace = workspace_ids[result.get("workspace_id") or DEFAULT_WORKSPACE]
            key = key_ids.get(result.get("api_key_id") or "", 0)
            row = rows[(hour, workspace, key, model)]
            for name, value in usage.items():
                row[name] += value
            row["cost_micros"] += cost.micros
            row["server_tool_cost_micros"] += cost.server_tools
    return rows


@transaction.atomic
def _store(
    source_id: int,
    start: dt.datetime,
    now: dt.datetime,
    workspaces: list[dict],
    keys: list[dict],
    buckets: list[dict],
) -> list[IngestedSpan]:
    """Replace the pulled hours' imported rollups and rebuild their days; move the cursor."""
    source = (
        AnthropicUsageSource.objects.select_for_update()
        .select_related("organization")
        .filter(pk=source_id)
        .first()
    )
    if source is None:  # removed meanwhile
        return []
    organization = source.organization
    workspace_ids, key_ids = _names(organization, workspaces, keys, buckets)
    rows = _hourly_rows(organization.pk, buckets, workspace_ids, key_ids)
    first = _hour_floor(start)
    last = max((_instant(b["ending_at"]) for b in buckets), default=first)
    imported = {"organization_id": organization.pk, "source": Source.IMPORTED}
    UsageHourly.objects.filter(**imported, hour__gte=first, hour__lt=last).delete()
    UsageHourly.objects.bulk_create(
        [
            UsageHourly(**imported, hour=hour, workspace_id=ws, api_key_id=key, model=model, **c)
            for (hour, ws, key, model), c in rows.items()
        ]
    )
    _rebuild_days(organization, first, last)
    source.imported_through = min(_hour_floor(now), last) if buckets else source.imported_through
    source.last_attempt_at = source.last_success_at = now
    source.failures = 0
    source.last_error = ""
    source.next_attempt_at = None
    source.save()
    cost = sum(c["cost_micros"] for c in rows.values())
    if not rows:
        return []
    return [IngestedSpan(organization.pk, first, last, len(rows), cost)]


def _rebuild_days(organization: Organization, first: dt.datetime, last: dt.datetime) -> None:
    """The imported daily rollups of every organization-local day that [first, last) touches,
    rebuilt from the imported hourly rollups of those whole days."""
    zone = organization.tzinfo
    first_day = first.astimezone(zone).date()
    last_day = (last - dt.timedelta(microseconds=1)).astimezone(zone).date()
    since = dt.datetime.combine(first_day, dt.time.min, tzinfo=zone)
    until = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    imported = {"organization_id": organization.pk, "source": Source.IMPORTED}
    days: dict[tuple, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for row in UsageHourly.objects.filter(**imported, hour__gte=since, hour__lt=until).values(
        "hour", "workspace_id", "api_key_id", "model", *COUNTERS
    ):
        day = row["hour"].astimezone(zone).date()
        total = days[(day, row["workspace_id"], row["api_key_id"], row["model"])]
        for name in COUNTERS:
            total[name] += row[name]
    UsageDaily.objects.filter(**imported, day__gte=first_day, day__lte=last_day).delete()
    UsageDaily.objects.bulk_create(
        [
            UsageDaily(**imported, day=day, workspace_id=ws, api_key_id=key, model=model, **c)
            for (day, ws, key, model), c in days.items()
        ]
    )
    _rebuild_months(organization, first_day, last_day)


def _rebuild_months(organization: Organization, first_day: dt.date, last_day: dt.date) -> None:
    """The imported monthly rollups of the months of [first_day, last_day], rebuilt from the
    imported daily rollups of those whole months."""
    first_month, last_month = first_day.replace(day=1), last_day.replace(day=1)
    until = (last_month + dt.timedelta(days=31)).replace(day=1)
    imported = {"organization_id": organization.pk, "source": Source.IMPORTED}
    months: dict[tuple, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for row in UsageDaily.objects.filter(**imported, day__gte=first_month, day__lt=until).values(
        "day", "workspace_id", "api_key_id", "model", *COUNTERS
    ):
        total = months[(row["day"].replace(day=1), row["workspace_id"], row["api_key_id"],
                        row["model"])]  # fmt: skip
        for name in COUNTERS:
            total[name] += row[name]
    UsageMonthly.objects.filter(**imported, month__gte=first_month, month__lte=last_month).delete()
    UsageMonthly.objects.bulk_create(
        [
            UsageMonthly(**imported, month=month, workspace_id=ws, api_key_id=key, model=model, **c)
            for (month, ws, key, model), c in months.items()
        ]
    )
