"""The usage dashboard in a real browser: finance@ filters to the Production workspace and the last
7 days, sees the chart, downloads the CSV and finds the page's totals in it; dev@ sees only their
own keys. Usage goes in through the real ingestion function. Screenshots at 1280 and 390 px
(var/screenshots/usage-*.png)."""

import csv
import io
import re
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apikeys.models import ApiKey
from tests.factories import PASSWORD, WorkspaceFactory
from tests.usage_helpers import event
from usage import partitions
from usage.export import HEADER
from usage.ingest import store_events

from .conftest import htmx_settled, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
MODELS = ("claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001", "claude-opus-4-1-20250805")


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"usage-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def key(membership, workspace, name, n):
    return ApiKey.objects.create(
        organization=membership.organization, workspace=workspace, owner=membership.user,
        name=name, key_hash=f"{n:064x}", prefix=f"csk_{n:04d}", last4=f"{n:04d}",
    )  # fmt: skip


@pytest.fixture
def traffic(world):
    """Two weeks of requests: two Production keys (the Admin's), one Development key (dev@'s)."""
    partitions.forget_known()
    production = WorkspaceFactory(organization=world.org, name="Production")
    keys = [
        key(world.admin, production, "Support bot", 1),
        key(world.admin, production, "Nightly batch", 2),
        key(world.member, world.workspace, "Dev laptop", 3),
    ]
    now = datetime.now(UTC)
    events = []
    for n in range(420):
        api_key = keys[n % 3]
        failed = n % 37 == 0
        events.append(
            event(
                world.org.pk, n,
                time=(now - timedelta(hours=n * 0.8)).timestamp(),
                workspace_id=api_key.workspace_id, api_key_id=api_key.pk,
                model=MODELS[n % len(MODELS)],
                input_tokens=0 if failed else 800 + (n * 37) % 5000,
                output_tokens=0 if failed else 100 + (n * 13) % 900,
                cache_read_input_tokens=0 if failed else (n % 4) * 1200,
                cache_creation_input_tokens=0 if failed else (n % 5) * 300,
                status=429 if failed else 200,
                error_type="rate_limit_error" if failed else "",
                cost_micros=0 if failed else 1_000 + (n * 7919) % 90_000,
            )
        )  # fmt: skip
    assert store_events(events).inserted == len(events)
    return keys


@pytest.fixture(autouse=True)
def _server_warmed_up(live_server):
    # The live server's first response takes ~10 s on a loaded machine (URLconf and app
    # imports): more than a page's 10 s timeout. Take it before the browser does.
    urllib.request.urlopen(live_server.url + "/healthz", timeout=120).read()


def total(page, name: str) -> str:
    return page.get_by_test_id(f"total-{name}").inner_text().strip()


def test_finance_filters_production_last_7_days_and_the_csv_matches(world, traffic, new_page):
    page = new_page()
    log_in(page, "finance@example.com", PASSWORD)
    page.goto("/o/acme-support/usage/")
    page.get_by_label("Period").select_option("30d")
    page.wait_for_url(re.compile(r"period=30d"))
    htmx_settled(page)
    page.get_by_label("Period").select_option("7d")
    page.wait_for_url(re.compile(r"period=7d"))
    htmx_settled(page)
    page.get_by_label("Workspace").select_option(label="Production")
    page.wait_for_url(re.compile(r"workspace=\d+"))  # htmx swapped the dashboard and pushed the URL
    htmx_settled(page)
    expect(page.get_by_test_id("breakdown")).not_to_contain_text("Dev laptop")
    assert page.get_by_label("Workspace").input_value() == str(traffic[0].workspace_id)
    chart = page.get_by_test_id("usage-chart")
    assert chart.is_visible()
    assert chart.locator("rect").count() > 7  # several models stacked on several days
    breakdown = page.get_by_test_id("breakdown").inner_text()
    assert "Support bot" in breakdown and "Nightly batch" in breakdown
    assert "Dev laptop" not in breakdown
    shoot(page, "finance-production-7d")

    page.get_by_test_id("export-menu").click()
    with page.expect_download() as download_info:
        page.get_by_test_id("export-day").click()
    body = Path(download_info.value.path()).read_text()
    lines = list(csv.reader(io.StringIO(body)))
    assert tuple(lines[0]) == HEADER
    rows = [dict(zip(HEADER, line, strict=True)) for line in lines[1:]]
    assert rows and {r["workspace"] for r in rows} == {"Production"}
    cost = sum(Decimal(r["cost_usd"]) for r in rows).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert f"${cost:,}" == total(page, "cost")
    assert f"{sum(int(r['requests']) for r in rows):,}" == total(page, "requests")
    assert f"{sum(int(r['errors']) for r in rows):,}" == total(page, "errors")
    assert f"{sum(int(r['output_tokens']) for r in rows):,}" == total(page, "output-tokens")
    today = datetime.now(world.org.tzinfo).date()
    assert min(r["period_start"] for r in rows) >= str(today - timedelta(days=6))


def test_dev_sees_only_their_own_keys(world, traffic, new_page):
    page = new_page()
    log_in(page, "dev@example.com", PASSWORD)
    page.goto("/o/acme-support/usage/?period=30d")
    main = page.locator("main").inner_text()
    assert "your own API keys" in main
    assert "Dev laptop" in main
    assert "Support bot" not in main and "Nightly batch" not in main
    options = page.get_by_label("API key").locator("option").all_inner_texts()
    assert options == ["All keys", "Dev laptop (csk_0003…0003)"]
    assert page.get_by_test_id("usage-chart").is_visible()
    shoot(page, "dev-own-keys")
