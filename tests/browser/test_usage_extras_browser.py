"""In a real browser: admin@ saves an Anthropic Admin API key on the import page and sees the
imported usage named on the usage page with yesterday's spike on top; finance@ turns the weekly
digest off on their profile. Screenshots at 1280 and 390 px (var/screenshots/)."""

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from tests.factories import PASSWORD, daily_usage
from tests.gateway.servers import serve_in_thread

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
ADMIN_KEY = "sk-ant-admin01-browser-test-key-0123456789-wxyz"


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"usage-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.fixture
def prices():
    """A price for each of the simulator's models (transactional tests lose the seeded table)."""
    from decimal import Decimal

    from usage import pricing
    from usage.models import ModelPrice

    since = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    for model, (given, made) in {
        "claude-sonnet-4-5": (3, 15), "claude-haiku-4-5": (1, 5), "claude-opus-4-1": (15, 75),
    }.items():  # fmt: skip
        ModelPrice.objects.get_or_create(
            model=model, effective_from=since,
            defaults={"input_per_mtok": Decimal(given), "output_per_mtok": Decimal(made),
                      "cache_write_per_mtok": Decimal(given) * Decimal("1.25"),
                      "cache_write_1h_per_mtok": Decimal(given) * 2,
                      "cache_read_per_mtok": Decimal(given) / 10},
        )  # fmt: skip
    pricing.invalidate()
    # Loaded now: pricing reloads lazily only outside an event loop, and Playwright's sync API
    # runs one in this thread (a worker has none).
    pricing.ensure_loaded()
    yield
    pricing.invalidate()


@pytest.fixture
def simulator():
    from gateway.simulator import Simulator

    running = serve_in_thread(Simulator())
    yield running
    running.stop()


def test_admin_imports_usage_and_sees_it_named_with_the_spike_on_top(
    world, new_page, simulator, settings, prices
):
    from usage import anthropic_import, spikes
    from usage.models import AnthropicUsageSource

    settings.USAGE_IMPORT_BASE_URL = simulator.url
    now = timezone.now()
    yesterday = now.date() - dt.timedelta(days=1)
    for back in range(1, 8):
        daily_usage(world.org, yesterday - dt.timedelta(days=back), 2_000_000)
    daily_usage(world.org, yesterday, 90_000_000)
    spikes.detect_spikes(now=now)

    page = new_page()
    log_in(page, "admin@example.com", PASSWORD)
    page.goto("/o/acme-support/settings/")
    page.get_by_role("link", name="Import usage from Anthropic").click()
    page.fill("input[name=api_key]", "sk-ant-api03-an-ordinary-key-0000")
    page.get_by_role("button", name="Save key").click()
    assert "This is not an Admin API key" in page.locator("main").inner_text()
    shoot(page, "import-refused-key")

    page.fill("input[name=api_key]", ADMIN_KEY)
    page.get_by_role("button", name="Save key").click()
    assert "Admin API key …wxyz saved" in page.locator("main").inner_text()
    source = AnthropicUsageSource.objects.get(organization=world.org)
    anthropic_import.import_usage(source.pk, now=now)  # what the worker does
    page.reload()
    main = page.locator("main").inner_text()
    assert "backend-prod" in main and "…wxyz" in main
    shoot(page, "import-status")

    page.get_by_role("link", name="Show imported usage").click()
    page.wait_for_load_state()
    notices = page.get_by_test_id("usage-notice")
    assert "Usage spike on" in notices.first.inner_text()
    main = page.locator("main").inner_text()
    assert "backend-prod (Anthropic)" in main and "Total cost\n$0.00" not in main
    shoot(page, "imported-with-spike")


def test_finance_turns_the_weekly_digest_off_on_their_profile(world, new_page):
    from usage.preferences import weekly_digest_wanted

    page = new_page()
    log_in(page, "finance@example.com", PASSWORD)
    page.get_by_role("button", name=world.billing.user.display_name).click()
    page.get_by_role("link", name="Profile and emails").click()
    box = page.get_by_label("Weekly usage digest")
    assert box.is_checked()
    shoot(page, "profile")
    box.uncheck()
    page.get_by_role("button", name="Save").click()
    assert "Email preferences saved." in page.locator("main").inner_text()
    assert not page.get_by_label("Weekly usage digest").is_checked()
    assert not weekly_digest_wanted(world.billing.user)
