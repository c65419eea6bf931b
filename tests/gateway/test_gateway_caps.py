"""Hard caps at the gateway: a request is reserved against every cap that applies to it (its key,
its workspace, its organization, prepaid credits, the operator's cap on the shared upstream) in
one atomic step, and refused before any upstream call when one of them is reached."""

from __future__ import annotations

import asyncio
import threading

import anthropic
import httpx
import pytest

from audit.models import AuditEvent
from billing import credits, services, spend
from billing.models import CreditAccount, LimitScope, PaymentMethod, SharedUpstreamAllowance
from core import hotpath

from .conftest import MODEL, events_for, mint_key

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"model": MODEL, "max_tokens": 1000, "messages": [{"role": "user", "content": "Hi there"}]}


def reservation_of(body=BODY) -> int:
    from usage import pricing

    pricing.invalidate()  # the price rows of this test, whatever an earlier one left loaded
    pricing.ensure_loaded()
    size = len(httpx.Request("POST", "http://x", json=body).content)
    amount = spend.max_cost_micros(MODEL, body["max_tokens"], size)
    assert amount > 0
    return amount


def whole_cents(micros: int) -> int:
    return -(-micros // 10_000) * 10_000


def set_limit(org, cap_micros, *, scope=LimitScope.ORGANIZATION, **target):
    current = (
        org.spend_limits.filter(scope=scope, **target).values_list("version", flat=True).first()
    )
    return services.save_spend_limit(
        organization=org,
        actor=None,
        enabled=True,
        cap_micros=whole_cents(cap_micros),
        thresholds=[50, 80, 100],
        scope=scope,
        expected_version=current,
        **target,
    )


def burst(url: str, keys: list[str], body=BODY) -> list[tuple[str, int, str]]:
    """All requests at once (one event loop in a thread of its own); (key, status, message)."""
    results: list[tuple[str, int, str]] = []

    async def run() -> None:
        limits = httpx.Limits(max_connections=len(keys))
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:

            async def one(key: str):
                response = await client.post(
                    f"{url}/v1/messages", json=body, headers={"x-api-key": key}
                )
                message = "" if response.status_code == 200 else response.json()["error"]["message"]
                return key, response.status_code, message

            results.extend(await asyncio.gather(*(one(k) for k in keys)))

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    thread.join()
    return results


def counter(key: str) -> int:
    return int(hotpath.client().hget(key, "total") or 0)


def test_concurrent_requests_overspend_neither_a_small_workspace_cap_nor_the_org_cap(gw):
    world = gw.world
    ws_raw, ws_key = mint_key(world.admin, world.workspace, "in the capped workspace")
    reservation = reservation_of()
    ws_cap, org_cap = whole_cents(3 * reservation), whole_cents(12 * reservation)
    set_limit(gw.org, org_cap)
    set_limit(gw.org, ws_cap, scope=LimitScope.WORKSPACE, workspace=world.workspace)
    # One request each first: both counters exist (rebuilt from the rollups) before the burst.
    assert [s for _, s, _ in burst(gw.url, [ws_raw, gw.key])] == [200, 200]
    results = burst(gw.url, [ws_raw, gw.key] * 50)
    statuses = {(k, s) for k, s, _ in results}
    assert {s for _, s in statuses} <= {200, 400}
    refusals = [m for _, status, m in results if status == 400]
    assert any(m.startswith("The workspace Development") for m in refusals), refusals
    assert any(m.startswith("Your organization") for m in refusals), refusals
    named = ("The workspace Development has reached its monthly spend limit of ",
             "Your organization has reached its monthly spend limit of ")  # fmt: skip
    assert all(m.startswith(named) for m in refusals), refusals
    events = events_for(gw.org.pk, 102)
    assert len(events) == 102
    ws_spent = sum(e.cost_micros for e in events if e.api_key_id == ws_key.pk)
    org_spent = sum(e.cost_micros for e in events)
    assert 0 < ws_spent <= ws_cap + reservation
    assert ws_spent < org_spent <= org_cap + reservation
    # Every reservation was settled: the counters hold what was spent.
    assert counter(spend.counter_key(gw.org.pk)) == org_spent
    ws_counter = spend.counter_key(gw.org.pk).replace(
        f":o:{gw.org.pk}:", f":w:{world.workspace.pk}:"
    )
    assert counter(ws_counter) == ws_spent


def test_a_key_cap_refuses_that_key_while_its_siblings_go_on(gw):
    from datetime import UTC, datetime

    from tests.factories import daily_usage

    world = gw.world
    default = gw.org.workspaces.get(is_default=True)
    capped_raw, capped = mint_key(world.admin, default, "Production")
    set_limit(gw.org, 5_000_000, scope=LimitScope.API_KEY, api_key=capped)
    # This month the key has spent its $5 already (its counter is rebuilt from the rollups).
    daily_usage(gw.org, datetime.now(UTC).date(), 5_000_000, workspace_id=default.pk,
                api_key_id=capped.pk)  # fmt: skip
    with gw.client(capped_raw) as client, pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(**BODY)
    assert "This API key (Production) has reached its monthly spend limit of $5.00" in (
        refused.value.message
    )
    with gw.client() as client:  # a sibling key of the same workspace
        for _ in range(3):
            assert client.messages.create(**BODY).content
    events = events_for(gw.org.pk, 4)
    assert [e.status for e in events] == [400, 200, 200, 200]
    assert events[0].upstream_request_id == ""  # refused before any upstream call


def test_a_reached_cap_raises_bad_request_in_the_sdk_and_raising_it_reopens_at_once(gw):
    world = gw.world
    world.org.timezone = "Europe/Paris"
    world.org.save()
    set_limit(gw.org, 1_000_000)
    from datetime import datetime

    from tests.factories import daily_usage

    daily_usage(gw.org, datetime.now(world.org.tzinfo).date(), 1_000_000)  # $1 spent already
    with gw.client() as client, pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**BODY)
    refused = caught.value
    reset = spend.period_reset(tz="Europe/Paris")
    assert "Your organization has reached its monthly spend limit of $1.00" in refused.message
    assert f"resets on {reset:%Y-%m-%d} at 00:00 CE" in refused.message  # CET or CEST
    assert refused.body["error"]["type"] == "invalid_request_error"
    set_limit(gw.org, 1_000_000_000)
    with gw.client() as client:
        assert client.messages.create(**BODY).content  # no wait: this process heard at once


def test_credits_run_out_and_requests_are_refused_with_anthropics_message(gw):
    credits.configure_credits(organization=gw.org, actor=None, enabled=True,
                              auto_recharge=False, recharge_threshold_micros=0,
                              recharge_amount_micros=0, expected_version=None)  # fmt: skip
    with gw.client() as client, pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(**BODY)  # a zero balance
    assert "Your credit balance is too low" in refused.value.message
    credits.grant_credits(organization=gw.org, actor=None, amount_micros=reservation_of() * 2,
                          memo="Welcome credit")  # fmt: skip
    admitted = 0
    with gw.client() as client:
        for _ in range(40):
            try:
                client.messages.create(**BODY)
                admitted += 1
            except anthropic.BadRequestError as error:
                assert "Your credit balance is too low" in error.message
                break
        else:
            pytest.fail("the credits never ran out")
    assert admitted >= 2


def test_the_shared_upstream_cap_applies_until_an_operator_raises_it(world, simulator, gateway,
                                                                      settings):  # fmt: skip
    from tests.gateway.conftest import seed_prices

    seed_prices()
    settings.GATEWAY_DEFAULT_UPSTREAM_URL = simulator.url
    settings.GATEWAY_DEFAULT_UPSTREAM_KEY = "sk-operator"
    settings.GATEWAY_DEFAULT_UPSTREAM_MONTHLY_CAP = "0.01"
    from gateway import routing

    routing.forget_routes()
    raw, _ = mint_key(world.admin, world.org.workspaces.get(is_default=True))
    client = anthropic.Anthropic(api_key=raw, base_url=gateway.url, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        for _ in range(10):
            client.messages.create(**BODY)
    assert "monthly limit of $0.01 on the console's shared Anthropic account" in (
        refused.value.message
    )
    allowance = SharedUpstreamAllowance.objects.create(organization=world.org,
                                                       monthly_cap_micros=None)  # fmt: skip
    services.announce_limits_changed(allowance.organization_id)
    assert client.messages.create(**BODY).content


def test_auto_recharge_fires_once_under_racing_workers(gw):
    from django.db import connections

    from billing.models import Charge
    from tests.factories import hourly_usage

    PaymentMethod.objects.create(
        organization=gw.org,
        kind="card",
        brand="visa",
        last4="4242",
        exp_month=1,
        exp_year=2099,
        holder_name="A",
        is_default=True,
    )
    account = credits.configure_credits(
        organization=gw.org, actor=None, enabled=True, auto_recharge=True,
        recharge_threshold_micros=5_000_000, recharge_amount_micros=20_000_000,
        expected_version=None,
    )  # fmt: skip
    credits.grant_credits(organization=gw.org, actor=None, amount_micros=10_000_000, memo="Start")
    from billing import periods

    hourly_usage(gw.org, periods.hour_ceil(account.window_started_at), 6_000_000)  # 4 $ left
    barrier = threading.Barrier(4)
    charged: list[int] = []

    def worker():
        barrier.wait()
        try:
            charged.extend(credits.evaluate_recharges(organization_ids=[gw.org.pk]))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(charged) == 1
    charge = Charge.objects.get()
    assert (charge.amount_micros, charge.status, charge.receipt_number) == (
        20_000_000, "pending", "ACME-R-2026-0001".replace("2026", str(charge.created_at.year)),
    )  # fmt: skip
    account = CreditAccount.objects.get(organization=gw.org)
    assert account.credited_micros == 30_000_000
    # $24 now: above the threshold, nothing more to do however often it is evaluated.
    assert credits.evaluate_recharges(organization_ids=[gw.org.pk]) == []
    # Usage takes it below again: a new crossing, one more recharge.
    hourly_usage(gw.org, periods.hour_ceil(account.window_started_at), 21_000_000)
    assert len(credits.evaluate_recharges(organization_ids=[gw.org.pk])) == 1
    assert credits.evaluate_recharges(organization_ids=[gw.org.pk]) == []
    assert Charge.objects.count() == 2
    logged = AuditEvent.objects.filter(action="credits.recharged", organization=gw.org)
    assert logged.count() == 2
