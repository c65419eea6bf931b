"""The guide's "Practical Workflow: Setting Up a Production Environment", end to end in a real
browser, each person in their own browser: the lead signs up and creates the organization (Step 1),
invites a developer as Member and a finance person as Billing-only, who accept from the emailed
links (Step 2); the keys Development, Testing (the developer's) and Production (the lead's) are
created on the API Keys page (Step 3); finance sets a $1,000 monthly limit with alerts at 50/80/90
(Step 4); the official SDK sends traffic through the gateway to the upstream simulator until the
50 % alert is emailed; finance checks the usage dashboard and downloads the CSV, the developer sees
only their own keys (Step 5). Then the guide's troubleshooting questions, each answered on the
page the console points to. Usage reaches the pages through the real path (gateway → Redis stream
→ ingestion → rollups). A screenshot per step (var/screenshots/workflow-NN-<step>.png; the main
pages also at 390 px, -390.png)."""

from __future__ import annotations

import csv
import io
import re
import time
import urllib.request
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import anthropic
import pytest
from django.core import mail
from playwright.sync_api import expect

from billing.models import AlertStatus, SpendAlert
from members.models import Membership, Role
from orgs.models import Organization
from tests.gateway.conftest import (  # noqa: F401 (fixtures)
    _fresh_gateway_caches,
    events_for,
    gateway,
    seed_prices,
    simulator,
)
from usage.export import HEADER

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
ORG, SLUG = "Support Bot", "support-bot"
LEAD, DEV, FINANCE = "lead@supportbot.test", "dev@supportbot.test", "finance@supportbot.test"
PASSPHRASE = "a-long-unusual-passphrase-91"
MODEL = "claude-haiku-4-5"  # $1 per million input tokens
# The simulator counts this prompt as 120 M input tokens (`[sim:prompt:…]`, gateway/simulator):
# $120 a request, so the fifth crosses $500 and none reaches $800 (80 %).
PROMPT_TOKENS = 120_000_000
LONG_PROMPT = f"Summarise this support thread [sim:prompt:{PROMPT_TOKENS}]"
MAX_REQUESTS = 12
INVITATION = re.compile(r"https?://[^/\s]+(/invitations/[^/\s]+/)")
CONFIRMATION = re.compile(r"https?://[^/\s]+(/accounts/confirm-email/[^/\s]+/)")


class Steps:
    """Numbers the screenshots in the order the steps happen."""

    def __init__(self) -> None:
        self.number = 0
        SHOTS.mkdir(parents=True, exist_ok=True)
        for old in SHOTS.glob("workflow-*.png"):
            old.unlink()

    def shoot(self, page, step: str, *, phone: bool = False) -> None:
        """A screenshot at 1280 px (and 390 px), after checking that nothing on the page is
        cut off at that width."""
        self.number += 1
        name = f"workflow-{self.number:02d}-{step}"
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        assert not cut_off(page), f"{step} at 1280 px: {cut_off(page)}"
        if phone:
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=str(SHOTS / f"{name}-390.png"), full_page=True)
            assert not cut_off(page), f"{step} at 390 px: {cut_off(page)}"
            page.set_viewport_size({"width": 1280, "height": 900})


# What a reader cannot see at this width: the page scrolls sideways, a table scrolls sideways
# (its sticky actions cell then covers a column), a desktop's row of tabs is cut, or a
# phone-width table cell (a "label: value" line) spills out of its card.
CUT_OFF = """() => {
  const found = [];
  const wide = (el) => el.scrollWidth > el.clientWidth + 1;
  const name = (el) => (el.dataset.label || el.className || el.tagName) + ': '
    + el.innerText.trim().slice(0, 40);
  if (wide(document.documentElement)) found.push('the page scrolls sideways');
  document.querySelectorAll('.table-responsive').forEach((el) => {
    if (wide(el)) found.push('scrolls sideways: ' + name(el));
  });
  // At phone width a row of tabs may scroll sideways (a swipe); on a desktop it must not.
  if (window.innerWidth >= 992) document.querySelectorAll('.nav-tabs').forEach((el) => {
    if (wide(el)) found.push('tabs cut: ' + name(el));
  });
  document.querySelectorAll('.table-stack td').forEach((el) => {
    if (el.offsetParent !== null && wide(el)) found.push('spills out: ' + name(el));
  });
  return found;
}"""


def cut_off(page) -> list[str]:
    return page.evaluate(CUT_OFF)


@pytest.fixture(autouse=True)
def _patient_on_a_loaded_machine():
    # Waits on conditions, never sleeps: but a busy 2-core machine may take seconds to answer.
    expect.set_options(timeout=20_000)
    yield
    expect.set_options(timeout=5_000)  # Playwright's default


def opened(new_page):
    page = new_page()
    page.set_default_timeout(20_000)
    page.set_viewport_size({"width": 1280, "height": 900})
    return page


def emails_to(address: str) -> list:
    return [m for m in mail.outbox if m.to == [address]]


def sign_up(page, email: str, name: str) -> None:
    page.fill("input[name=name]", name)
    page.fill("input[name=password1]", PASSPHRASE)
    page.fill("input[name=password2]", PASSPHRASE)
    if page.locator("input[name=email]").input_value() != email:
        page.fill("input[name=email]", email)
    page.locator("form button[type=submit]").last.click()


def log_in(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSPHRASE)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"/o/{SLUG}/"))


def invite(admin, email: str, role: str) -> str:
    """The Admin invites `email` as `role` on the Members page; returns the emailed link."""
    admin.goto(f"/o/{SLUG}/members/")
    admin.get_by_role("link", name="Invite member").click()
    admin.fill("input[name=email]", email)
    admin.get_by_label(role, exact=True).check()
    admin.get_by_role("button", name="Send invitation").click()
    admin.wait_for_url(f"**/o/{SLUG}/members/invitations/")
    expect(admin.locator("main")).to_contain_text(f"Invitation sent to {email} as {role}")
    [message] = emails_to(email)
    return INVITATION.search(message.body).group(1)


def accept(page, link: str, email: str, name: str, role: str) -> None:
    """The invitee opens the emailed link in their own browser, signs up and joins."""
    page.goto(link)
    page.wait_for_url("**/invitations/accept/")
    expect(page.locator("main")).to_contain_text(f"to join {ORG} as {role}")
    page.get_by_role("link", name="Sign up").click()
    assert page.input_value("input[name=email]") == email
    sign_up(page, email, name)
    page.wait_for_url("**/invitations/accept/")
    page.get_by_role("button", name=f"Join {ORG}").click()
    page.wait_for_url(f"**/o/{SLUG}/")
    expect(page.locator("main")).to_contain_text(f"You joined as {role}")


def create_key(page, name: str) -> str:
    """Company > API Keys > Create Key; the key is read from the page that shows it once."""
    page.goto(f"/o/{SLUG}/api-keys/")
    page.get_by_role("link", name="Create Key").click()
    page.fill("input[name=name]", name)
    page.get_by_role("button", name="Create Key").click()
    expect(page.locator("main")).to_contain_text("Copy the key now: you won't see it again")
    return page.get_by_test_id("new-key").input_value()


def ask(client: anthropic.Anthropic, text: str, max_tokens: int = 64):
    return client.messages.create(model=MODEL, max_tokens=max_tokens,
                                  messages=[{"role": "user", "content": text}])  # fmt: skip


def total(page, name: str) -> str:
    return page.get_by_test_id(f"total-{name}").inner_text().strip()


def test_the_guides_production_workflow_in_the_browser(
    live_server,
    new_page,
    simulator,  # noqa: F811
    gateway,  # noqa: F811
):
    from console.celery import app

    started = time.monotonic()
    seed_prices()
    # The live server's first answer imports the URLconf: seconds on a loaded machine.
    urllib.request.urlopen(live_server.url + "/healthz", timeout=120).read()
    steps = Steps()

    # Step 1: the lead signs up, confirms the address from the email, creates the organization.
    lead = opened(new_page)
    lead.goto("/accounts/signup/")
    sign_up(lead, LEAD, "Lee Lead")
    [confirmation] = emails_to(LEAD)
    lead.goto(CONFIRMATION.search(confirmation.body).group(1))
    lead.get_by_role("button", name="Confirm").click()
    lead.wait_for_url("**/orgs/new/")
    steps.shoot(lead, "create-organization")
    lead.fill("input[name=name]", ORG)
    lead.get_by_role("button", name="Create organization").click()
    lead.wait_for_url(f"**/o/{SLUG}/")
    setup = lead.get_by_test_id("production-setup")  # the guide's workflow, as a checklist
    expect(setup.locator("li[data-done=yes]")).to_have_text([re.compile("Create an organization")])
    steps.shoot(lead, "organization-home", phone=True)
    # Requests with the organization's keys go to its upstream (here, the simulator).
    lead.goto(f"/o/{SLUG}/settings/upstream/")
    lead.fill("input[name=base_url]", simulator.url)
    lead.fill("input[name=api_key]", "sk-ant-api03-simulated-upstream-key")
    lead.get_by_role("button", name="Save").click()
    expect(lead.get_by_test_id("upstream-in-effect")).to_contain_text(simulator.url)
    steps.shoot(lead, "upstream")

    # Step 2: a developer as Member, the finance person as Billing-only, each in their browser.
    dev, finance = opened(new_page), opened(new_page)
    accept(dev, invite(lead, DEV, "Member"), DEV, "Dana Developer", "Member")
    accept(finance, invite(lead, FINANCE, "Billing-only"), FINANCE, "Fran Finance", "Billing-only")
    lead.goto(f"/o/{SLUG}/members/")
    members = lead.locator("#table-region")
    for email in (LEAD, DEV, FINANCE):
        expect(members).to_contain_text(email)
    steps.shoot(lead, "members", phone=True)
    roles = dict(Membership.objects.filter(organization__slug=SLUG)
                 .values_list("user__email", "role"))  # fmt: skip
    assert roles == {LEAD: Role.ADMIN, DEV: Role.MEMBER, FINANCE: Role.BILLING}

    # Step 3: separate keys: Development and Testing (the developer's), Production (the lead's).
    development = create_key(dev, "Development")
    testing = create_key(dev, "Testing")
    steps.shoot(dev, "key-created")
    production = create_key(lead, "Production")
    lead.goto(f"/o/{SLUG}/api-keys/")
    keys = lead.locator("#table-region")
    for name, key in (("Development", development), ("Testing", testing),
                      ("Production", production)):  # fmt: skip
        row = keys.locator("tr", has_text=name)
        expect(row).to_contain_text(key[:8])
        assert key not in lead.content()  # shown once, on the page that created it
    steps.shoot(lead, "api-keys", phone=True)

    # Step 4: finance sets the monthly limit of $1,000 with alerts at 50 %, 80 % and 90 %.
    finance.goto(f"/o/{SLUG}/billing/")
    finance.get_by_role("link", name="Spending Limits").click()
    finance.wait_for_url("**/billing/limits/")
    toggle = finance.get_by_label("Enable spending limit")
    if not toggle.is_checked():
        toggle.check()
    finance.get_by_label("Monthly cap (USD)").fill("1000")
    finance.get_by_label("Email alerts at (% of the cap)").fill("50, 80, 90")
    finance.get_by_role("button", name="Save limit").click()
    expect(finance.locator("main")).to_contain_text(
        "Spending limit saved: $1,000.00 a month, alerts at 50%, 80%, 90% (on)."
    )
    steps.shoot(finance, "spending-limit", phone=True)
    lead.goto(f"/o/{SLUG}/")
    expect(setup.locator("li[data-done=yes]")).to_have_count(4)  # all but "Monitor usage weekly"
    expect(setup).to_contain_text("3 active now")
    steps.shoot(lead, "setup-done", phone=True)

    # Traffic with the official SDK through the gateway: the developer's laptop and CI once,
    # then the deployed application until the 50 % alert is emailed.
    organization = Organization.objects.get(slug=SLUG)
    sdk = {
        key: anthropic.Anthropic(api_key=key, base_url=gateway.url, max_retries=0, timeout=30)
        for key in (development, testing, production)
    }
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True  # alerts evaluated as ingestion commits (`make run` too)
    try:
        assert ask(sdk[development], "Hello from my laptop").usage.input_tokens > 0
        assert ask(sdk[testing], "CI smoke test").usage.input_tokens > 0
        sent = 0
        while not [m for m in mail.outbox if "has spent 50%" in m.subject]:
            assert sent < MAX_REQUESTS, (
                f"no 50 % alert after {sent} requests of $120: {[m.subject for m in mail.outbox]}"
            )
            answer = ask(sdk[production], LONG_PROMPT)
            assert answer.usage.input_tokens == PROMPT_TOKENS
            sent += 1
            # Each request's event ingested (stream → consumer → rollups) before the next.
            assert len(events_for(organization.pk, 2 + sent, timeout=30)) == 2 + sent
    finally:
        app.conf.task_always_eager = eager
    assert sent == 5  # $480 after four, $600 after the fifth
    alerts = [m for m in mail.outbox if "has spent" in m.subject]
    assert sorted(m.to[0] for m in alerts) == [FINANCE, LEAD]  # Admins and Billing-only
    assert {m.subject for m in alerts} == {
        f"[Console] Organization {ORG} has spent 50% of its $1,000.00 monthly limit"
    }  # 80 % and 90 % not yet
    assert [(a.threshold, a.status) for a in SpendAlert.objects.all()] == [(50, AlertStatus.SENT)]
    # Finance follows the email's "Review the limit" link.
    [alert] = [m for m in alerts if m.to == [FINANCE]]
    finance.goto(re.search(r"https?://[^/\s]+(/o/[^\s]+/billing/limits/)", alert.body).group(1))
    expect(finance.locator("main")).to_contain_text("50% · fired")
    expect(finance.locator("main")).to_contain_text("$600.00 of $1,000.00")
    steps.shoot(finance, "alert-fired")

    # Step 5: finance reviews the usage dashboard and exports the CSV.
    finance.goto(f"/o/{SLUG}/usage/")
    expect(finance.get_by_test_id("breakdown")).to_contain_text("Production")
    assert total(finance, "requests") == "7"
    page_cost = total(finance, "cost")
    assert page_cost.startswith("$600.")
    steps.shoot(finance, "usage", phone=True)
    finance.get_by_test_id("export-menu").click()
    with finance.expect_download() as download:
        finance.get_by_test_id("export-day").click()
    lines = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    assert tuple(lines[0]) == HEADER
    rows = [dict(zip(HEADER, line, strict=True)) for line in lines[1:]]
    cost = sum(Decimal(r["cost_usd"]) for r in rows).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert f"${cost:,}" == page_cost
    assert sum(int(r["requests"]) for r in rows) == 7
    assert {r["api_key_name"] for r in rows} >= {"Development", "Testing", "Production"}

    # The developer (Member) sees only their own keys' usage.
    dev.goto(f"/o/{SLUG}/usage/")
    main = dev.locator("main")
    expect(main).to_contain_text("your own API keys")
    breakdown = dev.get_by_test_id("breakdown").inner_text()
    assert "Development" in breakdown and "Testing" in breakdown
    assert "Production" not in breakdown
    assert total(dev, "requests") == "2"
    steps.shoot(dev, "usage-own-keys", phone=True)

    # Troubleshooting: "My API key stopped working". The developer revokes Testing (as a
    # leaked key would be); CI's next request is refused, and the keys page says why.
    dev.goto(f"/o/{SLUG}/api-keys/")
    row = dev.locator("#table-region tr", has_text="Testing")
    row.get_by_role("button", name="Actions for Testing").click()
    row.get_by_role("link", name="Revoke").click()
    dev.get_by_role("button", name="Revoke key").click()
    expect(dev.locator("main")).to_contain_text("Testing is revoked")
    deadline = time.monotonic() + 15  # revocations reach the gateway within a second
    while True:
        try:
            ask(sdk[testing], "CI smoke test")
        except anthropic.AuthenticationError as refused:
            assert "revoked" in str(refused)
            break
        assert time.monotonic() < deadline, "the revoked key still works at the gateway"
        time.sleep(0.1)
    lead.goto(f"/o/{SLUG}/api-keys/")
    row = lead.locator("#table-region tr", has_text="Testing")
    expect(row.locator("[data-status=revoked]")).to_have_text("Revoked")
    expect(row).to_contain_text("Default")  # which workspace the key belongs to
    expect(lead.locator("#table-region tr", has_text="Production")).to_contain_text("Active")
    steps.shoot(lead, "trouble-key-stopped-working", phone=True)

    # "Usage is higher than expected": the dashboard filtered by API key, its largest requests.
    finance.goto(f"/o/{SLUG}/usage/")
    picker = finance.get_by_label("API key")
    [option] = [o for o in picker.locator("option").all_inner_texts() if o.startswith("Production")]
    picker.select_option(label=option)
    finance.wait_for_url(re.compile(r"[?&]key=\d+"))
    largest = finance.get_by_test_id("largest-requests")
    expect(largest).to_contain_text(f"{PROMPT_TOKENS:,}")
    expect(largest).to_contain_text("Production")
    expect(finance.get_by_test_id("token-limits")).to_contain_text(
        "an Admin can also set a max_tokens ceiling per workspace"
    )
    steps.shoot(finance, "trouble-usage-higher")
    # "Consider implementing token limits": the lead follows the page to the workspace's
    # max_tokens ceiling, which the gateway then enforces.
    lead.goto(f"/o/{SLUG}/usage/")
    lead.get_by_role("link", name="max_tokens ceiling per workspace").click()
    lead.get_by_role("row", name=re.compile("^Default")).get_by_role("link", name="Edit").click()
    lead.wait_for_url("**/settings/upstream/workspaces/*/")
    lead.get_by_label("max_tokens ceiling").fill("1024")
    lead.get_by_role("button", name="Save policy").click()
    expect(lead.get_by_label("max_tokens ceiling")).to_have_value("1024")
    steps.shoot(lead, "trouble-token-ceiling")
    deadline = time.monotonic() + 15  # other processes cache routes for 5 s
    while True:
        try:
            ask(sdk[production], "Write me a novel", max_tokens=4096)
        except anthropic.BadRequestError as refused:
            assert "max_tokens: 4096 is above this workspace's limit of 1024" in str(refused)
            break
        assert time.monotonic() < deadline, "the gateway does not enforce the new ceiling"
        time.sleep(0.1)

    # "I can't invite a new member": only Admins may (the organization's home and the Members
    # page say so and name them), and the organization's member limit is on the Members page.
    dev.goto(f"/o/{SLUG}/")
    expect(dev.get_by_test_id("who-can-invite")).to_contain_text(
        f"Only Admins can invite members or change roles. Admins here: Lee Lead ({LEAD})"
    )
    steps.shoot(dev, "trouble-cannot-invite-home", phone=True)
    dev.goto(f"/o/{SLUG}/members/")
    forbidden = dev.get_by_test_id("members-forbidden")
    expect(forbidden).to_contain_text("Only Admins can")
    expect(forbidden).to_contain_text("Your role in Support Bot is Member")
    expect(forbidden).to_contain_text(LEAD)
    steps.shoot(dev, "trouble-cannot-invite")
    # "Check that the email address is correct": the Invitations tab lists each pending
    # address (here a typo the lead can spot, then resend to the right one or revoke).
    invite(lead, "qa@supportbot.tset", "Member")
    pending = lead.locator("#table-region tr", has_text="qa@supportbot.tset")
    expect(pending).to_contain_text("Member")
    expect(pending.get_by_role("button", name=re.compile("Actions"))).to_be_visible()
    steps.shoot(lead, "trouble-check-the-address")
    # "Verify your organization hasn't reached its member limit": seats on the Members page.
    lead.goto(f"/o/{SLUG}/members/")
    expect(lead.get_by_test_id("seats")).to_contain_text(
        "4 of 50 seats used: 3 members and 1 pending invitation"
    )
    steps.shoot(lead, "trouble-member-limit")

    print(f"workflow test: {time.monotonic() - started:.1f} s")
