"""`/v1/organizations/usage_report/messages` and `/v1/organizations/cost_report`, from what the
gateway metered (the rollups: hourly rows, which are UTC hours, for 1h and 1d buckets; raw
events for 1m buckets, kept for the organization's raw-usage retention).

Anthropic's rules: buckets are UTC minutes, hours or days (`starting_at` snapped to the bucket's
start); `limit` counts buckets per page (1d: default 7, at most 31; 1h: 24, at most 168; 1m: 60,
at most 1440), and a range longer than that maximum is refused; `page` is the `next_page` of
the previous answer. Usage of the default workspace has `workspace_id: null`, as in Anthropic's
reports. Costs are in US cents as decimal strings, exact (micro-dollars / 10,000)."""

from __future__ import annotations

import base64
import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Literal

from django.db.models import F, Sum
from django.db.models.functions import TruncDay, TruncMinute
from django.utils import timezone
from pydantic import BaseModel, Field, field_validator

from orgs.selectors import default_workspace
from usage.models import Source, UsageEvent, UsageHourly

from .. import ids
from ..api import AdminCall, endpoint
from ..errors import invalid
from ..pagination import decoded_ids

WIDTHS = {"1m": dt.timedelta(minutes=1), "1h": dt.timedelta(hours=1), "1d": dt.timedelta(days=1)}
DEFAULT_BUCKETS = {"1m": 60, "1h": 24, "1d": 7}
MAX_BUCKETS = {"1m": 1440, "1h": 168, "1d": 31}
COUNTERS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_creation_1h_input_tokens",
    "cache_read_input_tokens",
    "web_search_requests",
)
USAGE_GROUPS = ("api_key_id", "workspace_id", "model")
COST_GROUPS = ("workspace_id", "description")


def snap(moment: dt.datetime, width: str) -> dt.datetime:
    moment = moment.astimezone(dt.UTC)
    if width == "1m":
        return moment.replace(second=0, microsecond=0)
    if width == "1h":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def page_token(moment: dt.datetime) -> str:
    return "page_" + base64.urlsafe_b64encode(moment.isoformat().encode()).decode().rstrip("=")


def page_start(token: str) -> dt.datetime:
    try:
        body = token.removeprefix("page_")
        moment = dt.datetime.fromisoformat(
            base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        )
    except (ValueError, UnicodeDecodeError):
        raise invalid("page", "Not a page of this report: use next_page as given.") from None
    if moment.tzinfo is None:
        raise invalid("page", "Not a page of this report: use next_page as given.")
    return moment


class ReportParams(BaseModel):
    starting_at: dt.datetime = Field(description="RFC 3339; buckets starting at or after it.")
    ending_at: dt.datetime | None = Field(None, description="RFC 3339; buckets before it.")
    limit: int | None = Field(None, ge=1, description="Buckets per page (see bucket_width).")
    page: str | None = Field(None, description="next_page of the previous answer.")

    @field_validator("starting_at", "ending_at")
    @classmethod
    def with_zone(cls, value):
        if value is not None and value.tzinfo is None:
            raise ValueError("Give a time zone (e.g. 2026-11-01T00:00:00Z).")
        return value


class UsageReportParams(ReportParams):
    bucket_width: Literal["1m", "1h", "1d"] = "1d"
    group_by: list[Literal["api_key_id", "workspace_id", "model"]] = Field(default_factory=list)
    api_key_ids: list[str] = Field(default_factory=list, description="Only these keys.")
    workspace_ids: list[str] = Field(default_factory=list, description="Only these workspaces.")
    models: list[str] = Field(default_factory=list, description="Only these models.")


class CostReportParams(ReportParams):
    bucket_width: Literal["1d"] = "1d"
    group_by: list[Literal["workspace_id", "description"]] = Field(default_factory=list)


class CacheCreation(BaseModel):
    ephemeral_1h_input_tokens: int
    ephemeral_5m_input_tokens: int


class ServerToolUse(BaseModel):
    web_search_requests: int


class UsageResult(BaseModel):
    uncached_input_tokens: int
    cache_creation: CacheCreation
    cache_read_input_tokens: int
    output_tokens: int
    server_tool_use: ServerToolUse
    api_key_id: str | None
    workspace_id: str | None
    model: str | None
    service_tier: str | None = None
    context_window: str | None = None


class UsageBucket(BaseModel):
    starting_at: dt.datetime
    ending_at: dt.datetime
    results: list[UsageResult]


class UsageReport(BaseModel):
    data: list[UsageBucket]
    has_more: bool
    next_page: str | None


class CostResult(BaseModel):
    currency: Literal["USD"] = "USD"
    amount: str = Field(description="US cents, a decimal string.")
    workspace_id: str | None
    description: str | None
    cost_type: Literal["tokens", "web_search", "code_execution"] | None
    context_window: str | None = None
    model: str | None
    service_tier: str | None = None
    token_type: str | None = None


class CostBucket(BaseModel):
    starting_at: dt.datetime
    ending_at: dt.datetime
    results: list[CostResult]


class CostReport(BaseModel):
    data: list[CostBucket]
    has_more: bool
    next_page: str | None


def cents(micros: int) -> str:
    return f"{Decimal(int(micros)) / Decimal(10_000):f}"


class Window:
    """The buckets of one page: [start, stop), and whether more follow."""

    def __init__(self, params: ReportParams, width: str) -> None:
        step = WIDTHS[width]
        if params.ending_at is not None and params.ending_at <= params.starting_at:
            raise invalid("ending_at", "Must be after starting_at.")
        first = snap(params.starting_at, width)
        end = params.ending_at or timezone.now()
        total = -(-(end - first) // step)  # buckets that start before `end`
        if params.ending_at is not None and total > MAX_BUCKETS[width]:
            raise invalid(
                "bucket_width",
                f"{width} buckets cover at most {MAX_BUCKETS[width]} {width} buckets per "
                f"request; this range has {total}. Narrow it or use a wider bucket_width.",
            )
        limit = params.limit or DEFAULT_BUCKETS[width]
        if limit > MAX_BUCKETS[width]:
            raise invalid("limit", f"At most {MAX_BUCKETS[width]} for {width} buckets.")
        start = first
        if params.page is not None:
            start = page_start(params.page)
            if start < first or (start - first) % step:
                raise invalid("page", "Not a page of this report: use next_page as given.")
        self.step = step
        self.start = start
        count = max(0, min(limit, -(-(end - start) // step)))
        self.stop = start + count * step
        self.has_more = self.stop < end
        self.starts = [start + i * step for i in range(count)]


def _grouped_rows(call: AdminCall, window: Window, width: str, groups: tuple[str, ...], **filters):
    """Sums per (bucket start, group values) over the window."""
    organization_id = call.organization.pk
    if width == "1m":
        rows = UsageEvent.objects.filter(
            organization_id=organization_id,
            created_at__gte=window.start,
            created_at__lt=window.stop,
        ).annotate(bucket=TruncMinute("created_at", tzinfo=dt.UTC))
    else:
        rows = UsageHourly.objects.filter(
            organization_id=organization_id,
            source=Source.GATEWAY,
            hour__gte=window.start,
            hour__lt=window.stop,
        )
        bucket = F("hour") if width == "1h" else TruncDay("hour", tzinfo=dt.UTC)
        rows = rows.annotate(bucket=bucket)
    if filters.get("api_key_ids"):
        rows = rows.filter(api_key_id__in=filters["api_key_ids"])
    if filters.get("workspace_ids"):
        rows = rows.filter(workspace_id__in=filters["workspace_ids"])
    if filters.get("models"):
        rows = rows.filter(model__in=filters["models"])
    sums = {name: Sum(name) for name in filters["counters"]}
    return rows.values("bucket", *groups).annotate(**sums).order_by("bucket", *groups)


def _workspace_label(call: AdminCall):
    default = default_workspace(call.organization)
    default_pk = default.pk if default is not None else None

    def label(workspace_pk: int | None) -> str | None:
        if not workspace_pk or workspace_pk == default_pk:
            return None  # the default workspace, as Anthropic's reports show it
        return ids.encode("workspace", workspace_pk)

    return label


@endpoint(
    "GET",
    "/v1/organizations/usage_report/messages",
    summary="Token usage per time bucket",
    query=UsageReportParams,
    response=UsageReport,
    tag="Usage and cost",
)
def usage_report(call: AdminCall) -> UsageReport:
    params: UsageReportParams = call.query
    width = params.bucket_width
    window = Window(params, width)
    groups = tuple(dict.fromkeys(params.group_by))
    rows = _grouped_rows(
        call,
        window,
        width,
        groups,
        counters=COUNTERS,
        api_key_ids=decoded_ids("api_key", "api_key_ids", params.api_key_ids),
        workspace_ids=decoded_ids("workspace", "workspace_ids", params.workspace_ids),
        models=params.models,
    )
    workspace = _workspace_label(call)
    results: dict[dt.datetime, list[UsageResult]] = defaultdict(list)
    for row in rows:
        total = {name: int(row[name] or 0) for name in COUNTERS}
        if not any(total.values()):
            continue  # requests that used nothing (refusals): no line, as Anthropic's
        key_pk = row.get("api_key_id")
        results[row["bucket"].astimezone(dt.UTC)].append(
            UsageResult(
                uncached_input_tokens=total["input_tokens"],
                cache_creation=CacheCreation(
                    ephemeral_1h_input_tokens=total["cache_creation_1h_input_tokens"],
                    ephemeral_5m_input_tokens=total["cache_creation_input_tokens"]
                    - total["cache_creation_1h_input_tokens"],
                ),
                cache_read_input_tokens=total["cache_read_input_tokens"],
                output_tokens=total["output_tokens"],
                server_tool_use=ServerToolUse(web_search_requests=total["web_search_requests"]),
                api_key_id=ids.encode("api_key", key_pk) if key_pk else None,
                workspace_id=workspace(row.get("workspace_id")),
                model=row.get("model") or None,
            )
        )
    return UsageReport(
        data=[
            UsageBucket(starting_at=s, ending_at=s + window.step, results=results.get(s, []))
            for s in window.starts
        ],
        has_more=window.has_more,
        next_page=page_token(window.stop) if window.has_more else None,
    )


@endpoint(
    "GET",
    "/v1/organizations/cost_report",
    summary="Cost per day, in US cents",
    query=CostReportParams,
    response=CostReport,
    tag="Usage and cost",
)
def cost_report(call: AdminCall) -> CostReport:
    """Grouped by `description`, a model's token cost is one line (`cost_type: tokens`) and
    server tools' cost another (`cost_type: web_search`)."""
    params: CostReportParams = call.query
    window = Window(params, "1d")
    groups = tuple(dict.fromkeys(params.group_by))
    columns = tuple(
        column
        for column in (
            "workspace_id" if "workspace_id" in groups else None,
            "model" if "description" in groups else None,
        )
        if column
    )
    rows = _grouped_rows(
        call, window, "1d", columns, counters=("cost_micros", "server_tool_cost_micros")
    )
    workspace = _workspace_label(call)
    results: dict[dt.datetime, list[CostResult]] = defaultdict(list)
    for row in rows:
        bucket = row["bucket"].astimezone(dt.UTC)
        total, tools = int(row["cost_micros"] or 0), int(row["server_tool_cost_micros"] or 0)
        workspace_id = workspace(row.get("workspace_id")) if "workspace_id" in groups else None
        if "description" not in groups:
            results[bucket].append(
                CostResult(
                    amount=cents(total),
                    workspace_id=workspace_id,
                    description=None,
                    cost_type=None,
                    model=None,
                )
            )
            continue
        model = row.get("model") or "unknown model"
        results[bucket].append(
            CostResult(
                amount=cents(total - tools),
                workspace_id=workspace_id,
                description=f"{model} usage",
                cost_type="tokens",
                model=model,
            )
        )
        if tools:
            results[bucket].append(
                CostResult(
                    amount=cents(tools),
                    workspace_id=workspace_id,
                    description=f"{model} server tools",
                    cost_type="web_search",
                    model=model,
                )
            )
    return CostReport(
        data=[
            CostBucket(starting_at=s, ending_at=s + window.step, results=results.get(s, []))
            for s in window.starts
        ],
        has_more=window.has_more,
        next_page=page_token(window.stop) if window.has_more else None,
    )
