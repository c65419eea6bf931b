"""Real-browser tests: Playwright for Python driving Debian's chromium against a live server."""

import os

import pytest
from django.urls import get_resolver

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run from a
# thread with a running loop unless told it is safe. The test code itself is synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


# One browser per module, not per session: while Playwright runs, its loop counts as running in
# this thread, and code that asks (usage.pricing refreshes its table only outside a loop) would
# behave as if async in every test that runs after the first browser test.
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _static_files_from_finders(settings):
    # The live server serves /static/ from the apps' folders (finders), which know the plain
    # names only: use the non-hashing storage so pages link to names it can find.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def new_page(browser, live_server):
    """`new_page()` opens a page in a fresh browser context (its own cookies)."""
    # Import every view before the first page asks for one: the URLconf pulls in the gateway
    # and the Anthropic SDK's types, seconds of imports on a loaded machine that would
    # otherwise eat the first page's timeout.
    assert get_resolver().url_patterns
    contexts = []

    def open_page():
        context = browser.new_context(base_url=live_server.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def log_in(page, email: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def drain_usage() -> None:
    """Store what the gateway has published, as a Celery worker does within milliseconds
    (tests/gateway/test_processes.py measures that with the real processes)."""
    from usage.ingest import drain
    from usage.stream import publisher

    publisher().flush()
    drain(consumer="browser-test")


def csp_violations(page) -> list[str]:
    """The Content-Security-Policy violations chromium reports on `page` from now on."""
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return violations


def htmx_settled(page) -> None:
    """Wait until htmx has swapped and settled what it asked for. Its pushed URL can show before
    the swap: a filter chosen then acts on the form the swap is about to replace, and is lost."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )
