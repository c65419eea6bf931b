"""The usage dashboard: filters from the URL, totals, the chart, the breakdown, the largest and the
failed requests, who sees what, and the CSV of exactly what is filtered. Usage is fed through the
real ingestion function (usage.ingest.store_events) on PostgreSQL."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db.models import Count, Q, Sum
from django.urls import reverse

from apikeys.models import ApiKey
from members.models import Role
from usage import partitions, selectors
from usage.export import HEADER
from usage.ingest import store_events
from usage.models import ModelPrice, UsageEvent

from .factories import MembershipFactory, UserFactory, WorkspaceFactory
from .usage_helpers import event

pytestmark = pytest.mark.django_db

SONNET, HAIKU = "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"


@pytest.fixture(autouse=True)
def _partitions_known_afresh():
    # Partitions created in a rolled-back test transaction are gone: look again.
    partitions.forget_known()
    yield
    partitions.forget_known()


def make_key(membership, workspace, name: str, n: int) -> ApiKey:
    return ApiKey.objects.create(
        organization=membership.organization, workspace=workspace, owner=membership.user,
        name=name, key_hash=f"{n:064x}", prefix=f"csk_{n:04d}", last4=f"{n:04d}"[-4:],
    )  # fmt: skip


class Usage:
    """Events of the test world: the member's key, the admin's key (another workspace), and one
    event of another organization."""

    def __init__(self, world):
        self.world = world
        self.now = datetime.now(UTC)
        self.dev_key = make_key(world.member, world.workspace, "Dev laptop", 1)
        self.prod_ws = WorkspaceFactory(organization=world.org, name="Production")
        self.prod_key = make_key(world.admin, self.prod_ws, "Production app", 2)
        self.n = 0

    def add(self, key: ApiKey | None, days_ago: float = 0, **fields) -> dict:
        self.n += 1
        item = event(
            self.world.org.pk, self.n,
            time=(self.now - timedelta(days=days_ago)).timestamp(),
            workspace_id=key.workspace_id if key else None,
            api_key_id=key.pk if key else None,
            **fields,
        )  # fmt: skip
        return item

    def store(self, events: list[dict]) -> None:
        result = store_events(events)
        assert result.inserted == len(events) and not result.refused


@pytest.fixture
def usage(world) -> Usage:
    return Usage(world)


def page(client, world, **params):
    return client.get(reverse("usage:overview", args=[world.org.slug]), params)


def text_of(response, testid: str) -> str:
    html = response.content.decode()
    match = re.search(rf'data-testid="{testid}"[^>]*>(.*?)</', html, re.S)
    assert match, f"no {testid} on the page"
    return match.group(1).strip()


def money_on_page(response) -> Decimal:
    return Decimal(text_of(response, "total-cost").lstrip("$").replace(",", ""))


def read_csv(response) -> list[dict]:
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    lines = list(csv.reader(io.StringIO(body)))
    assert tuple(lines[0]) == HEADER
    return [dict(zip(HEADER, line, strict=True)) for line in lines[1:]]


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# -- what the page shows ---------------------------------------------------------------------


def test_the_dashboard_totals_the_last_7_days_of_usage_fed_by_ingestion(world, usage, client_for):
    usage.store(
        [
            usage.add(usage.prod_key, 1, model=SONNET, input_tokens=1000, output_tokens=200,
                      cache_creation_input_tokens=300, cache_read_input_tokens=500,
                      cost_micros=1_234_567),
            usage.add(usage.dev_key, 2, model=HAIKU, input_tokens=100, output_tokens=50,
                      cost_micros=5_000),
            usage.add(usage.dev_key, 3, model=HAIKU, status=429, error_type="rate_limit_error",
                      input_tokens=0, output_tokens=0, cost_micros=0),
            usage.add(usage.prod_key, 20, model=SONNET, cost_micros=9_000_000),  # too old
        ]
    )  # fmt: skip
    response = page(client_for(world.admin), world)
    assert response.status_code == 200
    assert text_of(response, "total-requests") == "3"
    assert text_of(response, "total-errors") == "1"
    assert text_of(response, "total-input-tokens") == "1,100"
    assert text_of(response, "total-output-tokens") == "250"
    assert text_of(response, "total-cache-write-tokens") == "300"
    assert text_of(response, "total-cache-read-tokens") == "500"
    assert money_on_page(response) == Decimal("1.24")
    # 500 read of 1,100 + 300 + 500 prompt tokens
    assert text_of(response, "total-cache-hit-rate") == "26%"
    html = response.content.decode()
    assert 'data-testid="usage-chart"' in html and SONNET in html and HAIKU in html
    assert "Production app" in html and "Dev laptop" in html
    assert "rate_limit_error" in html  # the failed request and its type


def test_a_period_of_30_days_reaches_further_back(world, usage, client_for):
    usage.store([usage.add(usage.prod_key, 20, cost_micros=9_000_000)])
    client = client_for(world.admin)
    assert text_of(page(client, world), "total-requests") == "0"
    assert text_of(page(client, world, period="30d"), "total-requests") == "1"
    assert money_on_page(page(client, world, period="30d")) == Decimal("9.00")


def test_a_long_period_sums_its_whole_months_and_the_days_around_them_exactly(
    world, usage, client_for
):
    world.org.timezone = "America/Los_Angeles"
    world.org.save()
    keys = (usage.prod_key, usage.dev_key, None)
    usage.store(
        [
            usage.add(
                keys[n % 3],
                n * 1.9,
                cost_micros=1_000 + n,
                input_tokens=10 + n,
                status=500 if n % 7 == 0 else 200,
            )
            for n in range(60)
        ]
    )  # fmt: skip  (114 days back: three or four whole months, and days before and after)
    today = datetime.now(world.org.tzinfo).date()
    start = today - timedelta(days=105)
    assert selectors.whole_months(start, today) is not None  # monthly rows answer for them
    since = datetime.combine(start, datetime.min.time(), tzinfo=world.org.tzinfo)
    events = UsageEvent.objects.filter(organization_id=world.org.pk, created_at__gte=since)
    for membership in (world.admin, world.member):
        scope = selectors.UsageScope.of(membership, start=start, end=today)
        mine = (
            events if scope.own_key_ids is None else events.filter(api_key_id__in=scope.own_key_ids)
        )
        expected = {
            (row["api_key_id"] or 0): (row["n"], row["cost"], row["tokens"], row["errors"])
            for row in mine.values("api_key_id").annotate(
                n=Count("*"), cost=Sum("cost_micros"), tokens=Sum("input_tokens"),
                errors=Count("status", filter=Q(status__gte=300)),
            )
        }  # fmt: skip
        found = {
            row["id"]: (row["requests"], row["cost_micros"], row["input_tokens"], row["errors"])
            for row in selectors.breakdown(scope, "key")
        }
        assert found == expected and len(found) == (3 if scope.own_key_ids is None else 1)
        response = page(client_for(membership), world, start=str(start), end=str(today))
        cost = sum(v[1] for v in expected.values())
        assert money_on_page(response) == cents(selectors.dollars_of(cost))


def test_filters_by_model_key_workspace_and_source_narrow_the_totals(world, usage, client_for):
    usage.store(
        [
            usage.add(usage.prod_key, 1, model=SONNET, cost_micros=3_000_000),
            usage.add(usage.dev_key, 1, model=HAIKU, cost_micros=1_000_000),
        ]
    )
    client = client_for(world.admin)
    assert money_on_page(page(client, world, model=SONNET)) == Decimal("3.00")
    assert money_on_page(page(client, world, key=usage.dev_key.pk)) == Decimal("1.00")
    assert money_on_page(page(client, world, workspace=usage.prod_ws.pk)) == Decimal("3.00")
    assert money_on_page(page(client, world, source="gateway")) == Decimal("4.00")
    assert money_on_page(page(client, world, source="imported")) == Decimal("0.00")


def test_a_custom_period_is_read_in_the_organizations_time_zone(world, usage, client_for):
    world.org.timezone = "America/New_York"
    world.org.save()
    # 03:00 UTC on 2 Nov is 22:00 on 1 Nov in New York (EST after the clocks went back).
    moment = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
    usage.now = moment
    usage.store([usage.add(usage.prod_key, 0, cost_micros=2_000_000)])
    client = client_for(world.admin)
    first = page(client, world, start="2026-11-01", end="2026-11-01")
    assert money_on_page(first) == Decimal("2.00")
    assert money_on_page(page(client, world, start="2026-11-02", end="2026-11-02")) == 0
    # One day: charted by hour, in the organization's zone.
    assert "Cost by hour" in first.content.decode()


@pytest.mark.parametrize(
    "params, error",
    [
        ({"start": "2026-11-10", "end": "2026-11-01"}, "The end date is before the start date."),
        ({"start": "2026-13-45", "end": "2026-11-01"}, "Enter a valid date."),
        ({"period": "custom", "start": "2026-11-01"}, "Enter both dates of the period."),
        ({"period": "fortnight"}, "Select a valid choice."),
        ({"model": "gpt-9"}, "Select a valid choice."),
        ({"key": "999999"}, "Select a valid choice."),
        ({"key": "not-a-number"}, "Select a valid choice."),
        ({"workspace": "999999"}, "Select a valid choice."),
        ({"source": "smoke-signals"}, "Select a valid choice."),
        ({"start": "2020-01-01", "end": "2026-01-01"}, "A period is at most"),
    ],
)
def test_bad_filters_are_form_errors_never_500(world, client_for, params, error):
    response = page(client_for(world.admin), world, **params)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert "Some filters are not valid" in response.content.decode()


def test_bad_filters_refuse_the_csv_with_400(world, client_for):
    response = page(client_for(world.admin), world, _export="csv", start="2026-11-10", end="x")
    assert response.status_code == 400
    response = page(client_for(world.admin), world, _export="xlsx")
    assert response.status_code == 400


def test_another_organizations_key_is_not_a_filter_choice(world, usage, client_for):
    foreign = make_key(world.outsider, world.other_workspace, "Globex key", 9)
    response = page(client_for(world.admin), world, key=foreign.pk)
    assert "Select a valid choice." in response.content.decode()


def test_switching_to_custom_starts_from_the_last_7_days(world, client_for):
    response = page(client_for(world.admin), world, period="custom")
    html = response.content.decode()
    assert "Some filters are not valid" not in html
    assert 'type="date" name="start"' in html


def test_htmx_swaps_the_dashboard_and_the_breakdown_alone(world, usage, client_for):
    usage.store([usage.add(usage.prod_key, 1, model=SONNET, cost_micros=1_000_000)])
    client = client_for(world.admin)
    url = reverse("usage:overview", args=[world.org.slug])
    whole = client.get(url, {"group": "model"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="usage-page")
    html = whole.content.decode()
    assert "<html" not in html and 'id="usage-page"' in html and SONNET in html
    assert "price-table" not in html
    table = client.get(url, {"group": "workspace"}, HTTP_HX_REQUEST="true",
                       HTTP_HX_TARGET="table-region")  # fmt: skip
    html = table.content.decode()
    assert html.lstrip().startswith('<section id="table-region"') and "Production" in html
    assert "usage-chart" not in html
    assert "HX-Target" in whole["Vary"]


def test_a_period_that_includes_today_refreshes_itself_and_a_past_one_does_not(
    world, usage, client_for
):
    usage.store([usage.add(usage.prod_key, 0, model=SONNET, cost_micros=1_000_000)])
    client = client_for(world.admin)
    url = reverse("usage:overview", args=[world.org.slug])
    html = client.get(url, {"group": "model"}).content.decode()
    live = re.search(r'<div id="usage-live"[^>]*>', html).group(0)
    assert 'hx-trigger="every 5s, visibilitychange from:document"' in live
    assert "data-live-refresh" in live and "group=model" in live
    # The refresh is the live part alone: totals, chart, breakdown, requests; no filters.
    part = client.get(url, {"group": "model"}, HTTP_HX_REQUEST="true",
                      HTTP_HX_TARGET="usage-live")  # fmt: skip
    html = part.content.decode()
    assert html.lstrip().startswith('<div id="usage-live"') and "every 5s" in html
    assert 'data-testid="total-requests">1<' in html and SONNET in html
    assert 'id="table-region"' in html and "usage-chart" in html
    assert "usage-filters" not in html and "price-table" not in html and "<html" not in html
    assert "HX-Target" in part["Vary"]
    for past in ({"period": "last_month"}, {"start": "2020-01-01", "end": "2020-01-31"}):
        html = client.get(url, past).content.decode()
        live = re.search(r'<div id="usage-live"[^>]*>', html).group(0)
        assert "hx-trigger" not in live and "data-live-refresh" not in live


def test_a_refresh_after_the_session_ended_sends_the_whole_page_to_the_login(world, client):
    url = reverse("usage:overview", args=[world.org.slug])
    poll = client.get(f"{url}?period=30d", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="usage-live")
    # Not the login page swapped into the dashboard: htmx loads the login page whole.
    assert poll.status_code == 200 and poll.content == b""
    assert poll["HX-Redirect"].startswith(reverse("account_login") + "?next=")
    assert "period%3D30d" in poll["HX-Redirect"]
    assert client.get(url).status_code == 302  # a page of its own is redirected as before


def test_the_breakdown_groups_by_key_model_or_workspace(world, usage, client_for):
    usage.store(
        [
            usage.add(usage.prod_key, 1, model=SONNET, cost_micros=3_000_000),
            usage.add(usage.prod_key, 1, model=HAIKU, cost_micros=1_000_000),
            usage.add(usage.dev_key, 1, model=HAIKU, cost_micros=500_000),
        ]
    )
    client = client_for(world.admin)
    by_model = page(client, world, group="model").content.decode()
    assert re.search(rf"{HAIKU}.*\$1\.50", by_model, re.S)
    by_ws = page(client, world, group="workspace").content.decode()
    assert re.search(r"Production.*\$4\.00", by_ws, re.S)


def test_the_largest_requests_come_by_cost_or_by_tokens(world, usage, client_for):
    usage.store(
        [
            usage.add(usage.prod_key, 1, model=SONNET, input_tokens=10, output_tokens=10,
                      cost_micros=7_000_000, request_id="req_costly"),
            usage.add(usage.dev_key, 1, model=HAIKU, input_tokens=90_000, output_tokens=10,
                      cost_micros=90_000, request_id="req_wordy"),
        ]
    )  # fmt: skip
    client = client_for(world.admin)
    html = page(client, world).content.decode()
    section = html[html.index('data-testid="largest-requests"') :]
    assert section.index("Production app") < section.index("Dev laptop")
    html = page(client, world, largest="tokens").content.decode()
    section = html[html.index('data-testid="largest-requests"') :]
    assert section.index("Dev laptop") < section.index("Production app")
    assert "90,000" in section


def test_fallback_priced_requests_are_flagged(world, usage, client_for):
    usage.store([usage.add(usage.prod_key, 1, model="claude-future-9", fallback_priced=True,
                           cost_micros=2_000_000)])  # fmt: skip
    html = page(client_for(world.admin), world).content.decode()
    assert 'data-testid="fallback-notice"' in html and "fallback price" in html


def test_an_empty_period_says_so(world, client_for):
    response = page(client_for(world.admin), world)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="chart-empty"' in html and 'data-testid="breakdown-empty"' in html
    assert money_on_page(response) == Decimal("0.00")


def test_members_see_the_price_table_read_only(world, client_for):
    ModelPrice.objects.create(
        model="claude-sonnet-4-5", effective_from=datetime(2025, 1, 1, tzinfo=UTC),
        input_per_mtok=3, output_per_mtok=15, cache_write_per_mtok=Decimal("3.75"),
        cache_write_1h_per_mtok=6, cache_read_per_mtok=Decimal("0.30"),
    )  # fmt: skip
    html = page(client_for(world.member), world).content.decode()
    section = html[html.index('data-testid="price-table"') :]
    assert "claude-sonnet-4-5" in section and "$3.75" in section and "$0.3" in section
    assert "<form" not in section


# -- who sees what -----------------------------------------------------------------------------


def test_a_member_sees_only_the_usage_of_their_own_keys(world, usage, client_for):
    usage.store(
        [
            usage.add(usage.prod_key, 1, model=SONNET, cost_micros=3_000_000,
                      request_id="req_admins", status=500, error_type="api_error"),
            usage.add(usage.dev_key, 1, model=HAIKU, cost_micros=1_000_000,
                      request_id="req_members"),
        ]
    )  # fmt: skip
    client = client_for(world.member)
    response = page(client, world)
    html = response.content.decode()
    assert money_on_page(response) == Decimal("1.00")
    assert text_of(response, "total-requests") == "1"
    assert "Production app" not in html and SONNET not in html and "api_error" not in html
    assert "Dev laptop" in html
    # Nor by asking for the other key, or its workspace: they are not choices.
    assert "Select a valid choice." in page(client, world, key=usage.prod_key.pk).content.decode()
    response = page(client, world, workspace=usage.prod_ws.pk)
    assert "Select a valid choice." in response.content.decode()
    for granularity in ("day", "hour", "event"):
        rows = read_csv(page(client, world, _export="csv", granularity=granularity))
        assert {row["api_key_name"] for row in rows} == {"Dev laptop"}
        assert sum(Decimal(row["cost_usd"]) for row in rows) == Decimal("1")


@pytest.mark.parametrize("role", ["admin", "billing"])
def test_admins_and_billing_see_the_whole_organization(world, usage, client_for, role):
    usage.store(
        [
            usage.add(usage.prod_key, 1, cost_micros=3_000_000),
            usage.add(usage.dev_key, 1, cost_micros=1_000_000),
        ]
    )
    other = event(world.other_org.pk, 999, api_key_id=usage.prod_key.pk, cost_micros=50_000_000)
    usage.store([other])
    response = page(client_for(world.membership(role)), world)
    assert money_on_page(response) == Decimal("4.00")  # not the other organization's $50


def test_a_member_without_keys_sees_an_empty_dashboard(world, usage, client_for):
    usage.store([usage.add(usage.prod_key, 1, cost_micros=3_000_000)])
    loner = MembershipFactory(organization=world.org, role=Role.MEMBER, user=UserFactory())
    response = page(client_for(loner), world)
    assert money_on_page(response) == 0
    assert "Your keys have no usage" in response.content.decode()


def test_the_organization_home_shows_month_to_date_usage_by_role(world, usage, client_for):
    usage.store(
        [
            usage.add(usage.prod_key, 0, cost_micros=3_000_000),
            usage.add(usage.dev_key, 0, cost_micros=1_000_000),
        ]
    )
    url = reverse("org_home", args=[world.org.slug])
    for who, cost, requests in (
        (world.admin, "$4.00", "2"),
        (world.billing, "$4.00", "2"),
        (world.member, "$1.00", "1"),
    ):
        response = client_for(who).get(url)
        assert text_of(response, "usage-month-cost") == cost
        assert text_of(response, "usage-month-requests") == requests


def test_error_types_are_counted_among_the_most_recent_failures_and_the_page_says_so(
    world, usage, client_for, monkeypatch
):
    usage.store(
        [usage.add(usage.prod_key, 1 + n / 10, model=SONNET, status=429,
                   error_type="rate_limit_error", cost_micros=0) for n in range(4)]
        + [usage.add(usage.dev_key, 4 + n, model=HAIKU, status=529,
                     error_type="overloaded_error", cost_micros=0) for n in range(2)]
        + [usage.add(usage.dev_key, 2, model=HAIKU, cost_micros=10)]
    )  # fmt: skip

    def badges(response) -> list[str]:
        html = response.content.decode()
        return re.findall(r'data-testid="error-type">([^<]*)<', html)

    client = client_for(world.admin)
    response = page(client, world)
    assert badges(response) == ["rate_limit_error (429) × 4", "overloaded_error (529) × 2"]
    assert 'data-testid="error-types-of"' not in response.content.decode()
    scope = selectors.UsageScope.of(world.admin, start=usage.now.date() - timedelta(days=8),
                                    end=usage.now.date())  # fmt: skip
    assert not selectors.error_types(scope).bounded
    # Imported usage has no raw events, so no error types (its rollups may count errors).
    assert list(selectors.error_types(dataclasses.replace(scope, source="imported"))) == []

    # More failures than are counted: the most recent ones, and the page says how many.
    monkeypatch.setattr(selectors, "ERROR_TYPES_OF", 3)
    response = page(client, world)
    assert badges(response) == ["rate_limit_error (429) × 3"]
    assert text_of(response, "error-types-of") == "in the 3 most recent failed requests"
    assert text_of(response, "total-errors") == "6"  # the total still counts them all
    found = selectors.error_types(scope)
    assert found.bounded and found.of == 3 and len(found) == 1


# -- the CSV -------------------------------------------------------------------------------------


@pytest.mark.parametrize("granularity", ["day", "hour", "event"])
def test_the_csv_totals_equal_the_page_totals_to_the_cent(world, usage, client_for, granularity):
    events = [
        usage.add(usage.prod_key if n % 3 else usage.dev_key, n % 6 + 0.3,
                  model=SONNET if n % 2 else HAIKU, input_tokens=n * 7, output_tokens=n,
                  cache_read_input_tokens=n * 3, cost_micros=123_457 * n + 3,
                  status=200 if n % 5 else 529, error_type="" if n % 5 else "overloaded_error")
        for n in range(1, 40)
    ]  # fmt: skip
    usage.store(events)
    client = client_for(world.billing)
    for params in ({}, {"workspace": usage.prod_ws.pk}, {"model": HAIKU}):
        shown = page(client, world, **params)
        rows = read_csv(page(client, world, _export="csv", granularity=granularity, **params))
        assert cents(sum(Decimal(r["cost_usd"]) for r in rows)) == money_on_page(shown)
        assert str(sum(int(r["requests"]) for r in rows)) == text_of(shown, "total-requests")
        assert str(sum(int(r["errors"]) for r in rows)) == text_of(shown, "total-errors")
        input_tokens = f"{sum(int(r['input_tokens']) for r in rows):,}"
        assert input_tokens == text_of(shown, "total-input-tokens")


def test_the_csv_header_and_a_row(world, usage, client_for):
    usage.store([usage.add(usage.prod_key, 1, model=SONNET, input_tokens=5, output_tokens=6,
                           cache_creation_input_tokens=7, cache_read_input_tokens=8,
                           cost_micros=1_000_001)])  # fmt: skip
    response = page(client_for(world.admin), world, _export="csv")
    assert "attachment" in response["Content-Disposition"]
    assert ".csv" in response["Content-Disposition"]
    (row,) = read_csv(response)
    assert row == {
        "period_start": row["period_start"],
        "workspace": "Production",
        "api_key_name": "Production app",
        "api_key_prefix": "csk_0002",
        "model": SONNET,
        "source": "gateway",
        "requests": "1",
        "errors": "0",
        "input_tokens": "5",
        "output_tokens": "6",
        "cache_creation_input_tokens": "7",
        "cache_read_input_tokens": "8",
        "cost_usd": "1.000001",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", row["period_start"])


def test_csv_cells_a_spreadsheet_would_run_are_quoted(world, usage, client_for):
    usage.prod_key.name = "=HYPERLINK(1)"
    usage.prod_key.save()
    usage.store([usage.add(usage.prod_key, 1, cost_micros=1)])
    (row,) = read_csv(page(client_for(world.admin), world, _export="csv", granularity="event"))
    assert row["api_key_name"] == "'=HYPERLINK(1)"


def test_the_page_reads_a_fixed_number_of_queries(
    world, usage, client_for, django_assert_max_num_queries
):
    usage.store([usage.add(usage.prod_key, d, cost_micros=1000) for d in range(7)])
    client = client_for(world.admin)
    page(client, world)
    for n in range(30):  # more keys and events do not mean more queries
        key = make_key(world.admin, usage.prod_ws, f"key {n}", 100 + n)
        usage.store([usage.add(key, 1, cost_micros=1000)])
    with django_assert_max_num_queries(25):
        assert page(client, world).status_code == 200


@pytest.mark.parametrize("granularity", ["day", "hour", "event"])
def test_postgresql_writes_the_same_csv_as_the_portable_path(world, usage, client_for,
                                                             granularity):  # fmt: skip
    from usage.export import python_lines, rows
    from usage.forms import UsageFilterForm

    world.org.timezone = "America/St_Johns"  # -03:30, -02:30 in summer
    world.org.save()
    usage.prod_key.name = 'Prod, "main" =1'
    usage.prod_key.save()
    usage.store(
        [usage.add(usage.prod_key if n % 2 else usage.dev_key, n / 3, model=SONNET,
                   cost_micros=n * 1_000_003, status=200 if n % 4 else 500) for n in range(12)]
        + [usage.add(None, 1, model="=cmd", cost_micros=5)]
    )  # fmt: skip
    form = UsageFilterForm({"period": "30d"}, membership=world.admin)
    assert form.is_valid(), form.errors
    copied = "".join(
        c.decode() if isinstance(c, bytes) else c
        for c in rows(form.scope(), granularity, world.org)
    )
    portable = "".join(python_lines(form.scope(), granularity, world.org))
    assert copied == portable
    assert "'=cmd" in copied and '"Prod, ""main"" =1"' in copied


def test_a_csv_download_cut_short_leaves_the_connection_usable(world, usage):
    from django.db import connection

    from usage.export import rows
    from usage.forms import UsageFilterForm

    usage.store([usage.add(usage.prod_key, n / 100, cost_micros=n) for n in range(3000)])
    form = UsageFilterForm({}, membership=world.admin)
    assert form.is_valid()
    lines = rows(form.scope(), "event", world.org)
    next(lines)
    next(lines)
    lines.close()  # the client went away: the COPY is cancelled
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM usage_usageevent")
        assert cursor.fetchone() == (3000,)


def test_the_breakdown_pages_by_25_and_the_totals_count_every_row(world, usage, client_for):
    keys = [make_key(world.admin, usage.prod_ws, f"key {n:02d}", 200 + n) for n in range(30)]
    usage.store([usage.add(key, 1, cost_micros=1_000_000 * (n + 1)) for n, key in enumerate(keys)])
    client = client_for(world.admin)
    first = page(client, world)
    html = first.content.decode()
    table = html[html.index('data-testid="breakdown"') :]
    assert "key 29" in table and "key 04" not in table  # largest cost first
    assert money_on_page(first) == Decimal(sum(range(1, 31)))
    second = client.get(
        reverse("usage:overview", args=[world.org.slug]), {"page": 2},
        HTTP_HX_REQUEST="true", HTTP_HX_TARGET="table-region",
    )  # fmt: skip
    html = second.content.decode()
    assert "key 04" in html and "key 29" not in html


def test_the_charts_cost_labels_show_a_quiet_keys_fractions_of_a_cent():
    from usage.chart import format_value

    assert format_value(230, "cost") == "$0.0002"  # not "$0.00" on both axis lines
    assert format_value(0, "cost") == "$0.00"
    assert format_value(1_234_567_890, "cost") == "$1,234.57"
    assert format_value(1_234, "tokens") == "1,234"


def test_the_largest_requests_point_to_token_limits_by_role(client_for, world, usage):
    usage.store([usage.add(usage.prod_key, input_tokens=90_000, output_tokens=10)])

    def hint(membership):
        return page(client_for(membership), world).content.decode()

    ceiling_page = reverse("gateway:upstream", args=["acme-support"]) + "#workspaces"
    admin = hint(world.admin)
    assert 'data-testid="token-limits"' in admin and ceiling_page in admin
    finance = hint(world.billing)
    assert "an Admin can also set a max_tokens ceiling per workspace" in finance
    assert ceiling_page not in finance  # Settings are the Admins'


@pytest.mark.parametrize("value", ["", "3", "-2", "x", None])
def test_the_filters_select_writes_what_djangos_select_template_writes(value):
    """usage.forms.Select writes its options itself (bench_dashboard): the same bytes as
    Django's templates, groups, a selected option, escaping and attributes included."""
    from django import forms

    from usage.forms import Select

    choices = [
        ("", "All keys"),
        ("Console", [(3, 'key <3> & "q"'), (4, "key 4")]),
        ("Imported <from> Anthropic", [(-2, "Anthropic's key (…abcd)")]),
    ]
    attrs = {"class": "form-select form-select-sm", "id": "id_key", "aria-invalid": "true",
             "disabled": True, "hidden": False}  # fmt: skip
    ours = Select(attrs={"class": "form-select form-select-sm"}, choices=choices)
    djangos = forms.Select(attrs={"class": "form-select form-select-sm"}, choices=choices)
    assert ours.render("key", value, attrs) == djangos.render("key", value, attrs)
    plain = [("", "All models"), ("m&1", "m&1")]
    assert Select(choices=plain).render("model", "m&1") == forms.Select(choices=plain).render(
        "model", "m&1"
    )


@pytest.mark.parametrize("params", [{}, {"sort": "label"}, {"sort": "-errors", "page": "2"}])
def test_the_breakdowns_rows_are_what_the_table_template_writes(rf, params):
    """BreakdownTable writes its rows itself (bench_dashboard): the same bytes as the table
    template's loop, labels escaped, an empty value as django-tables2 shows it."""
    from django.template.loader import render_to_string
    from django_tables2 import RequestConfig

    from usage.tables import BreakdownTable

    rows = [
        {"id": n, "label": f"key <{n}> & co" if n % 3 else "", "detail": "csk_1…abcd" if n % 2 else "",
         **dict.fromkeys(selectors.COUNTERS, n * 1000 + 7), "errors": None if n == 4 else n}
        for n in range(30)
    ]  # fmt: skip

    def rendered(template_name):
        table = BreakdownTable(rows, group="key", template_name=template_name)
        request = rf.get("/", params)
        RequestConfig(request, paginate={"per_page": 25}).configure(table)
        return render_to_string(template_name, {"table": table, "request": request})

    ours = rendered("usage/_breakdown_table.html")
    assert "&amp; co" in ours and "—" in ours
    assert ours == rendered("django_tables2/console.html")
