"""The usage dashboard refreshes itself: admin@ has it open, filtered to the Development
workspace, when a request goes through the gateway (the official SDK); within one refresh (5 s)
the totals count it, without a navigation and with the filter kept. A hidden tab does not poll
and refreshes when it shows again; chromium reports no Content-Security-Policy violation (htmx's
`every` trigger needs no eval); once the session ends, a refresh loads the login page whole.
Screenshots at 1280 and 390 px (var/screenshots/usage-live-*)."""

import re
import urllib.request

import anthropic
import pytest
from playwright.sync_api import expect

from gateway.services import configure_upstream
from tests.factories import PASSWORD
from tests.gateway.conftest import (  # noqa: F401 (fixtures)
    MODEL,
    _fresh_gateway_caches,
    gateway,
    mint_key,
    seed_prices,
    simulator,
)

from .conftest import csp_violations, drain_usage, htmx_settled, log_in
from .test_usage_browser import shoot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_open_dashboard_counts_a_new_request_without_a_reload(
    world,
    new_page,
    live_server,
    simulator,  # noqa: F811
    gateway,  # noqa: F811
):
    urllib.request.urlopen(live_server.url + "/healthz", timeout=120).read()  # warm the server
    seed_prices()
    configure_upstream(organization=world.org, base_url=simulator.url,
                       api_key="sk-sim-live", actor=None)  # fmt: skip
    raw, _ = mint_key(world.admin, world.workspace)
    sdk = anthropic.Anthropic(api_key=raw, base_url=gateway.url, max_retries=0)
    ask = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}

    page = new_page()
    violations = csp_violations(page)
    log_in(page, "admin@example.com", PASSWORD)
    page.goto("/o/acme-support/usage/")
    page.get_by_label("Workspace").select_option(label="Development")
    page.wait_for_url(re.compile(r"workspace=\d+"))
    htmx_settled(page)
    expect(page.get_by_test_id("total-requests")).to_have_text("0")
    address = page.url
    page.evaluate("window.notReloaded = true")  # gone if the page were loaded again

    sdk.messages.create(**ask)
    drain_usage()
    # One poll (5 s) and its answer; the default 10 s timeout would be a tight margin.
    expect(page.get_by_test_id("total-requests")).to_have_text("1", timeout=15_000)
    expect(page.get_by_test_id("breakdown")).to_contain_text("test key")
    expect(page.get_by_test_id("usage-chart")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    assert page.url == address  # the poll pushes no address
    assert page.get_by_label("Workspace").input_value() == str(world.workspace.pk)
    shoot(page, "live-refreshed")

    # The breakdown by model (its own swap, pushed to the address) stays by model through a
    # refresh. A hidden tab skips its polls; shown again, it refreshes at once.
    page.get_by_test_id("group-by").get_by_text("By model").click()
    page.wait_for_url(re.compile(r"group=model"))
    htmx_settled(page)
    expect(page.get_by_test_id("breakdown")).to_contain_text(MODEL)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/usage/" in r.url else None)
    page.evaluate("""() => {
        Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    sdk.messages.create(**ask)
    drain_usage()
    page.wait_for_timeout(300)
    assert asked == []
    page.evaluate("""() => {
        Object.defineProperty(document, "hidden", {configurable: true, get: () => false});
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    expect(page.get_by_test_id("total-requests")).to_have_text("2", timeout=3_000)
    expect(page.get_by_test_id("breakdown")).to_contain_text(MODEL)
    assert asked and all(
        f"workspace={world.workspace.pk}" in url and "group=model" in url for url in asked
    )
    assert page.evaluate("window.notReloaded") is True

    # A period over (last month) shows what was and does not poll.
    page.get_by_label("Period").select_option("last_month")
    page.wait_for_url(re.compile(r"period=last_month"))
    htmx_settled(page)
    assert page.get_by_test_id("usage-live").get_attribute("hx-trigger") is None

    # The session ends while the page is open: the next refresh loads the login page whole.
    page.get_by_label("Period").select_option("7d")
    page.wait_for_url(re.compile(r"period=7d"))
    htmx_settled(page)
    page.context.clear_cookies()
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_url(re.compile(r"/accounts/login/\?next="))
    expect(page.locator("input[name=password]")).to_be_visible()

    assert page.evaluate("typeof htmx") == "object"
    assert violations == [], violations
