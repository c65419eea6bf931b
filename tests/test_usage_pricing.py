"""Pricing: every token type and server tool against values computed by hand, the batch discount,
unknown models at the configured fallback (flagged, never $0), the price list command and the
Django admin (validated, transactional, idempotent, audited), and repricing a past period after
a price is corrected (events and both rollups). Real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from usage import pricing
from usage.ingest import store_events
from usage.models import ModelPrice, UsageDaily, UsageEvent, UsageHourly, UsageMonthly

from .factories import UserFactory
from .usage_helpers import event, months_of_days

pytestmark = pytest.mark.django_db(transaction=True)

FROM_2025 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def price_table(settings):
    """Two models with prices that make hand computation easy (US dollars per MTok)."""
    settings.USAGE_FALLBACK_PRICE_MODEL = ""
    ModelPrice.objects.all().delete()
    ModelPrice.objects.create(
        model="claude-sonnet-4-5", effective_from=FROM_2025,
        input_per_mtok=Decimal(3), output_per_mtok=Decimal(15),
        cache_write_per_mtok=Decimal("3.75"), cache_write_1h_per_mtok=Decimal(6),
        cache_read_per_mtok=Decimal("0.30"),
    )  # fmt: skip
    ModelPrice.objects.create(
        model="claude-opus-4-1", effective_from=FROM_2025,
        input_per_mtok=Decimal(15), output_per_mtok=Decimal(75),
        cache_write_per_mtok=Decimal("18.75"), cache_write_1h_per_mtok=Decimal(30),
        cache_read_per_mtok=Decimal("1.50"),
    )  # fmt: skip
    pricing.invalidate()
    yield
    pricing.invalidate()


SONNET = "claude-sonnet-4-5-20250929"
ALL_AT_ONCE = {
    "input_tokens": 100,
    "output_tokens": 50,
    "cache_creation_input_tokens": 1_000,
    "cache_read_input_tokens": 100,
    "web_search_requests": 1,
}
AT = datetime(2026, 3, 10, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("usage", "micros"),
    [
        # $3/MTok: 1,000,000 tokens = $3 = 3,000,000 micro-dollars; 1 token = 3 micro-dollars
        ({"input_tokens": 1_000_000}, 3_000_000),
        ({"input_tokens": 1}, 3),
        ({"output_tokens": 2_000}, 30_000),  # 2,000 × $15/MTok = $0.03
        # 5-minute writes: 1,000 × $3.75/MTok = $0.00375
        ({"cache_creation_input_tokens": 1_000}, 3_750),
        # of 1,000 written, 400 with the 1-hour TTL: 600 × 3.75 + 400 × 6 = 2,250 + 2,400
        ({"cache_creation_input_tokens": 1_000, "cache_creation_1h_input_tokens": 400}, 4_650),
        ({"cache_read_input_tokens": 10_000}, 3_000),  # 10,000 × $0.30/MTok
        ({"cache_read_input_tokens": 1}, 1),  # 0.3 micro-dollars, rounded up once
        # web search $10 per 1,000 = 10,000 micro-dollars a search; web fetch: tokens only
        ({"web_search_requests": 3}, 30_000),
        ({"server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 5}}, 20_000),
        ({"code_execution_seconds": 3_600}, 50_000),  # $0.05 an hour
        # all at once: 300 + 750 + 3,750 + 30 + 10,000 = 14,830
        (ALL_AT_ONCE, 14_830),
    ],
)
def test_each_token_type_and_server_tool_is_priced_as_computed_by_hand(usage, micros):
    assert pricing.price_usage(SONNET, usage, AT) == micros


def test_server_tools_are_their_own_share_of_the_cost_and_batches_halve_tokens_only():
    usage = {"input_tokens": 1_000, "output_tokens": 1_000, "web_search_requests": 2}
    cost = pricing.cost_of(SONNET, usage, AT)
    assert cost == pricing.Cost(3_000 + 15_000 + 20_000, 20_000, False)
    batch = pricing.cost_of(SONNET, usage, AT, batch=True)
    assert batch == pricing.Cost(9_000 + 20_000, 20_000, False)


def test_the_price_in_effect_at_the_time_of_the_request_applies():
    ModelPrice.objects.create(
        model="claude-sonnet-4-5", effective_from=datetime(2026, 6, 1, tzinfo=UTC),
        input_per_mtok=Decimal(4), output_per_mtok=Decimal(20),
        cache_write_per_mtok=Decimal(5), cache_write_1h_per_mtok=Decimal(8),
        cache_read_per_mtok=Decimal("0.40"),
    )  # fmt: skip
    pricing.invalidate()
    assert pricing.price_usage(SONNET, {"input_tokens": 1_000}, AT) == 3_000
    later = datetime(2026, 6, 1, 0, 0, 1, tzinfo=UTC)
    assert pricing.price_usage(SONNET, {"input_tokens": 1_000}, later) == 4_000


def test_an_unknown_model_is_priced_at_the_dearest_price_and_flagged_never_free():
    cost = pricing.cost_of("claude-nova-9", {"input_tokens": 1_000, "output_tokens": 100}, AT)
    assert cost == pricing.Cost(15_000 + 7_500, 0, True)  # Opus, the dearest on file
    assert not pricing.cost_of(SONNET, {"input_tokens": 1}, AT).fallback


def test_the_fallback_price_is_a_setting(settings):
    settings.USAGE_FALLBACK_PRICE_MODEL = "claude-sonnet-4-5"
    pricing.invalidate()
    cost = pricing.cost_of("claude-nova-9", {"input_tokens": 1_000, "output_tokens": 100}, AT)
    assert cost == pricing.Cost(3_000 + 1_500, 0, True)
    settings.USAGE_FALLBACK_PRICE_MODEL = "no-such-model"  # a typo: still never free
    pricing.invalidate()
    assert pricing.cost_of("claude-nova-9", {"input_tokens": 1_000}, AT) == (15_000, 0, True)


def test_fallback_priced_events_are_counted_in_both_rollups(world):
    org = world.org
    store_events([
        event(org.pk, 1, model="claude-nova-9", cost_micros=22_500, fallback_priced=True),
        event(org.pk, 2, model=SONNET),
    ])  # fmt: skip
    assert UsageEvent.objects.get(request_id=f"req_t_{org.pk}_1").fallback_priced
    for rollup in (UsageHourly, UsageDaily):
        flagged = rollup.objects.get(organization_id=org.pk, model="claude-nova-9")
        assert (flagged.requests, flagged.fallback_priced_requests) == (1, 1)
        assert (
            rollup.objects.get(organization_id=org.pk, model=SONNET).fallback_priced_requests == 0
        )


# -- manage.py load_prices ---------------------------------------------------------------------

CSV_HEADER = (
    "model,effective_from,input_per_mtok,output_per_mtok,cache_write_5m_per_mtok,"
    "cache_write_1h_per_mtok,cache_read_per_mtok\n"
)


def run_load(path) -> str:
    from io import StringIO

    out = StringIO()
    call_command("load_prices", str(path), stdout=out)
    return out.getvalue()


def test_load_prices_from_csv_adds_and_corrects_rows_and_a_second_load_changes_nothing(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(
        CSV_HEADER
        + "claude-haiku-4-5,2025-10-01,1,5,1.25,2,0.10\n"
        + "claude-sonnet-4-5,2025-01-01,3.5,15,3.75,6,0.30\n"  # corrects the row on file
        + "claude-sonnet-4-5,2026-06-01T00:00:00Z,4,20,5,8,0.40\n"
    )
    output = run_load(path)
    assert "2 prices added, 1 changed, 0 unchanged" in output
    haiku = ModelPrice.objects.get(model="claude-haiku-4-5")
    assert (haiku.input_per_mtok, haiku.cache_write_1h_per_mtok) == (Decimal(1), Decimal(2))
    assert haiku.effective_from == datetime(2025, 10, 1, tzinfo=UTC)
    assert haiku.web_search_per_1k == Decimal(10)  # Anthropic's price when the file has none
    assert ModelPrice.objects.get(
        model="claude-sonnet-4-5", effective_from=FROM_2025
    ).input_per_mtok == Decimal("3.5")
    assert AuditEvent.objects.filter(action="price.list_loaded").count() == 1
    entry = AuditEvent.objects.get(action="price.list_loaded")
    assert entry.organization is None and entry.after["created"] == 2

    assert "0 prices added, 0 changed, 3 unchanged" in run_load(path)
    assert ModelPrice.objects.count() == 4
    assert AuditEvent.objects.filter(action="price.list_loaded").count() == 1


def test_load_prices_from_json_with_server_tool_prices(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"prices": [{
        "model": "claude-haiku-4-5", "effective_from": "2025-10-01",
        "input_per_mtok": 1, "output_per_mtok": "5", "cache_write_5m_per_mtok": 1.25,
        "cache_write_1h_per_mtok": 2, "cache_read_per_mtok": 0.1,
        "web_search_per_1k": 12.5, "web_fetch_per_1k": "0",
    }]}))  # fmt: skip
    assert "1 prices added" in run_load(path)
    haiku = ModelPrice.objects.get(model="claude-haiku-4-5")
    assert (haiku.cache_write_per_mtok, haiku.cache_read_per_mtok) == (
        Decimal("1.25"),
        Decimal("0.1"),
    )
    assert haiku.web_search_per_1k == Decimal("12.5")
    pricing.invalidate()
    assert pricing.price_usage("claude-haiku-4-5", {"web_search_requests": 2}, AT) == 25_000


def test_a_bad_price_list_names_every_problem_and_loads_nothing(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(
        CSV_HEADER
        + "claude-haiku-4-5,2025-10-01,1,5,1.25,2,0.10\n"  # valid, but not loaded either
        + "claude-x,2025-13-01,1,5,1.25,2,0.10\n"
        + "claude-y,2025-01-01,-1,five,1.25,2,0.1234567\n"
        + "bad model!,2025-01-01,1,5,1.25,2,0.1\n"
        + "claude-haiku-4-5,2025-10-01,1,5,1.25,2,0.10\n"
        + "claude-z,2025-01-01,1,5\n"
    )
    with pytest.raises(CommandError) as raised:
        run_load(path)
    message = str(raised.value)
    for expected in (
        "line 3: effective_from: '2025-13-01' is not a date",
        "line 4: input_per_mtok: -1 is negative",
        "line 4: output_per_mtok: 'five' is not a number",
        "line 4: cache_read_per_mtok: 0.1234567 has more than 6 decimal places",
        "line 5: model: 'bad model!' is not a model id",
        "line 6: repeats the price of claude-haiku-4-5",
        "line 7: cache_write_per_mtok: missing",
    ):
        assert expected in message
    assert not ModelPrice.objects.filter(model="claude-haiku-4-5").exists()
    assert not AuditEvent.objects.filter(action="price.list_loaded").exists()


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("p.csv", "", "the file is empty"),
        ("p.csv", "model,effective_from,input\n", "unknown column(s) 'input'"),
        ("p.csv", CSV_HEADER, "the file holds no prices"),
        ("p.json", "{not json", "not valid JSON"),
        ("p.json", '{"model": "x"}', "expected a list of prices"),
        ("p.json", '[{"model": "claude-x", "effective_from": 2025}]', "missing column(s)"),
    ],
)
def test_price_list_format_errors_are_clear(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CommandError, match="was not loaded") as raised:
        run_load(path)
    assert problem in str(raised.value)


def test_load_prices_of_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run_load(tmp_path / "nowhere.csv")


# -- the Django admin ----------------------------------------------------------------------


def test_operators_keep_prices_in_the_django_admin_audited(client):
    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)
    assert client.get("/admin/usage/modelprice/").status_code == 200
    response = client.post(
        "/admin/usage/modelprice/add/",
        {
            "model": "claude-haiku-4-5", "effective_from_0": "2025-10-01",
            "effective_from_1": "00:00:00", "input_per_mtok": "1", "output_per_mtok": "5",
            "cache_write_per_mtok": "1.25", "cache_write_1h_per_mtok": "2",
            "cache_read_per_mtok": "0.1", "web_search_per_1k": "10", "web_fetch_per_1k": "0",
            "code_execution_per_hour": "0.05",
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    price = ModelPrice.objects.get(model="claude-haiku-4-5")
    changed = AuditEvent.objects.get(action="price.changed")
    assert changed.actor == operator and Decimal(changed.after["input_per_mtok"]) == 1
    response = client.post(f"/admin/usage/modelprice/{price.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ModelPrice.objects.filter(pk=price.pk).exists()
    assert AuditEvent.objects.filter(action="price.deleted", actor=operator).exists()


def test_a_negative_price_is_refused_in_the_admin(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.post(
        "/admin/usage/modelprice/add/",
        {
            "model": "claude-haiku-4-5", "effective_from_0": "2025-10-01",
            "effective_from_1": "00:00:00", "input_per_mtok": "-1", "output_per_mtok": "5",
            "cache_write_per_mtok": "1.25", "cache_write_1h_per_mtok": "2",
            "cache_read_per_mtok": "0.1", "web_search_per_1k": "10", "web_fetch_per_1k": "0",
            "code_execution_per_hour": "0.05",
        },
    )  # fmt: skip
    assert response.status_code == 200
    assert not ModelPrice.objects.filter(model="claude-haiku-4-5").exists()


# -- manage.py reprice ---------------------------------------------------------------------


def _stored(org, n, moment: datetime, **usage) -> dict:
    """An event as the gateway publishes it, priced as the gateway prices it."""
    cost = pricing.cost_of(SONNET, usage, moment)
    counts = {
        "input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
        "cache_creation_1h_input_tokens": 0, "cache_read_input_tokens": 0,
        "web_search_requests": 0, **usage,
    }  # fmt: skip
    return event(
        org.pk, n, model=SONNET, time=moment.timestamp(), cost_micros=cost.micros,
        server_tool_cost_micros=cost.server_tools, fallback_priced=cost.fallback, **counts,
    )  # fmt: skip


def reprice(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("reprice", *args, stdout=out)
    return out.getvalue()


def test_reprice_rebuilds_costs_of_the_period_and_its_rollups_after_a_price_correction(world):
    org, other = world.org, world.other_org
    org.timezone = "UTC"
    org.save(update_fields=["timezone"])
    day = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
    outside = datetime(2026, 3, 12, 9, 30, tzinfo=UTC)
    store_events([
        _stored(org, 1, day, input_tokens=1_000, output_tokens=100),
        _stored(org, 2, day, cache_creation_input_tokens=1_000,
                cache_creation_1h_input_tokens=400, cache_read_input_tokens=10_000),
        _stored(org, 3, day, web_search_requests=2),
        _stored(org, 4, outside, input_tokens=1_000),
        _stored(other, 5, day, input_tokens=1_000),
    ], now=day.timestamp() + 3 * 86400)  # fmt: skip
    assert UsageDaily.objects.get(organization_id=org.pk, day=date(2026, 3, 10)).cost_micros == (
        3_000 + 1_500 + 2_250 + 2_400 + 3_000 + 20_000
    )
    # The operator corrects every Sonnet price, and web search.
    ModelPrice.objects.filter(model="claude-sonnet-4-5").update(
        input_per_mtok=Decimal(4), output_per_mtok=Decimal(20), cache_write_per_mtok=Decimal(5),
        cache_write_1h_per_mtok=Decimal(8), cache_read_per_mtok=Decimal("0.40"),
        web_search_per_1k=Decimal(12),
    )  # fmt: skip

    output = reprice("--org", org.slug, "--from", "2026-03-10", "--to", "2026-03-11")
    assert "3 requests, 3 repriced" in output
    by_id = {e.request_id: e for e in UsageEvent.objects.filter(organization_id=org.pk)}
    # by hand, at the corrected prices:
    assert by_id[f"req_t_{org.pk}_1"].cost_micros == 1_000 * 4 + 100 * 20  # 6,000
    assert by_id[f"req_t_{org.pk}_2"].cost_micros == 600 * 5 + 400 * 8 + 10_000 * 4 // 10  # 10,200
    assert by_id[f"req_t_{org.pk}_3"].cost_micros == 24_000  # 2 searches × $12 / 1,000
    assert by_id[f"req_t_{org.pk}_3"].server_tool_cost_micros == 24_000
    assert by_id[f"req_t_{org.pk}_4"].cost_micros == 3_000  # outside the period: untouched
    assert UsageEvent.objects.get(organization_id=other.pk).cost_micros == 3_000  # other org

    daily = UsageDaily.objects.get(organization_id=org.pk, day=date(2026, 3, 10))
    hourly = UsageHourly.objects.get(organization_id=org.pk, hour=day.replace(minute=0))
    for row in (daily, hourly):
        assert (row.requests, row.cost_micros, row.server_tool_cost_micros) == (
            3,
            6_000 + 10_200 + 24_000,
            24_000,
        )
        assert row.input_tokens == 1_000  # counts are not touched
    assert (
        UsageDaily.objects.get(organization_id=org.pk, day=date(2026, 3, 12)).cost_micros == 3_000
    )
    # The month's row moved with its days: March is both days' sums, at the new prices.
    march = UsageMonthly.objects.get(organization_id=org.pk, month=date(2026, 3, 1))
    assert (march.requests, march.cost_micros) == (4, 6_000 + 10_200 + 24_000 + 3_000)
    monthly, days_summed = months_of_days(org.pk)
    assert monthly == days_summed
    audit = AuditEvent.objects.get(action="usage.repriced")
    assert audit.organization == org and audit.after["events"] == 3
    assert audit.after["cost_micros"] == 40_200

    before = (list(UsageEvent.objects.values()), list(UsageHourly.objects.values()),
              list(UsageDaily.objects.values()), list(UsageMonthly.objects.values()))  # fmt: skip
    assert "0 repriced" in reprice("--org", org.slug, "--from", "2026-03-10", "--to", "2026-03-11")
    after = (list(UsageEvent.objects.values()), list(UsageHourly.objects.values()),
             list(UsageDaily.objects.values()), list(UsageMonthly.objects.values()))  # fmt: skip
    assert before == after
    assert AuditEvent.objects.filter(action="usage.repriced").count() == 1


def test_reprice_uses_the_organizations_own_days_and_keeps_rollups_of_hours_it_cuts(world):
    org = world.org
    org.timezone = "Asia/Kolkata"  # UTC+5:30: a local day starts at 18:30 UTC
    org.save(update_fields=["timezone"])
    inside = datetime(2026, 3, 9, 18, 45, tzinfo=UTC)  # 10 March 00:15 in Kolkata
    before_day = datetime(2026, 3, 9, 18, 15, tzinfo=UTC)  # 9 March 23:45: same UTC hour
    store_events([
        _stored(org, 1, inside, input_tokens=1_000),
        _stored(org, 2, before_day, input_tokens=1_000),
    ], now=inside.timestamp() + 86400)  # fmt: skip
    ModelPrice.objects.filter(model="claude-sonnet-4-5").update(input_per_mtok=Decimal(4))
    reprice("--org", org.slug, "--from", "2026-03-10", "--to", "2026-03-10")
    hour = UsageHourly.objects.get(
        organization_id=org.pk, hour=datetime(2026, 3, 9, 18, tzinfo=UTC)
    )
    assert (hour.requests, hour.cost_micros) == (2, 4_000 + 3_000)
    days = dict(UsageDaily.objects.filter(organization_id=org.pk).values_list("day", "cost_micros"))
    assert days == {date(2026, 3, 10): 4_000, date(2026, 3, 9): 3_000}


def test_reprice_says_so_when_the_gateways_counters_could_not_follow(world, settings):
    """Redis unreachable after the commit: the rollups are repriced, and the command fails with
    what was not done (the counters keep the old costs), instead of reporting success."""
    org = world.org
    moment = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
    store_events([_stored(org, 1, moment, input_tokens=1_000)], now=moment.timestamp() + 86400)
    ModelPrice.objects.filter(model="claude-sonnet-4-5").update(input_per_mtok=Decimal(4))
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    with pytest.raises(CommandError) as failed:
        reprice("--org", org.slug, "--from", "2026-03-10", "--to", "2026-03-10")
    message = str(failed.value)
    assert "spend counters of the gateway were not corrected for acme-support" in message
    assert "ConnectionError" in message and "rollups are repriced" in message
    assert UsageDaily.objects.get(organization_id=org.pk).cost_micros == 4_000


def test_reprice_flags_and_unflags_fallback_pricing(world):
    org = world.org
    moment = datetime(2026, 3, 10, 9, tzinfo=UTC)
    usage = {"input_tokens": 1_000}
    cost = pricing.cost_of("claude-nova-9", usage, moment)
    store_events([event(org.pk, 1, model="claude-nova-9", time=moment.timestamp(),
                        input_tokens=1_000, output_tokens=0, cost_micros=cost.micros,
                        fallback_priced=True)], now=moment.timestamp() + 86400)  # fmt: skip
    assert UsageDaily.objects.get(organization_id=org.pk).fallback_priced_requests == 1
    ModelPrice.objects.create(
        model="claude-nova", effective_from=FROM_2025, input_per_mtok=Decimal(2),
        output_per_mtok=Decimal(10), cache_write_per_mtok=Decimal("2.5"),
        cache_write_1h_per_mtok=Decimal(4), cache_read_per_mtok=Decimal("0.2"),
    )  # fmt: skip
    reprice("--from", "2026-03-10", "--to", "2026-03-10")  # every organization
    stored = UsageEvent.objects.get(organization_id=org.pk)
    assert (stored.cost_micros, stored.fallback_priced) == (2_000, False)
    daily = UsageDaily.objects.get(organization_id=org.pk)
    assert (daily.cost_micros, daily.fallback_priced_requests) == (2_000, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2026-03-10", "--to", "2026-03-09"), "--to is before --from"),
        (("--from", "10/03/2026", "--to", "2026-03-09"), "is not a date"),
        (("--org", "nobody", "--from", "2026-03-10", "--to", "2026-03-10"), "No organization"),
    ],
)
def test_reprice_refuses_bad_arguments(world, args, message):
    with pytest.raises(CommandError, match=message):
        reprice(*args)
