"""Usage that did not pass through the gateway: an Admin saves an Anthropic Admin API key, and the
import pulls the Messages usage report (1-hour buckets by key, workspace and model, page after
page) and the key and workspace names from the simulator into the rollups with source
"imported": incrementally, idempotently, and backing off when Anthropic refuses the key."""

import datetime as dt
from collections import Counter

import pytest

from audit.models import AuditEvent
from core import crypto
from gateway.simulator import Simulator, admin_report
from tests.factories import daily_usage
from tests.gateway.servers import serve_in_thread
from tests.usage_helpers import months_of_days
from usage import anthropic_import, pricing
from usage.models import (
    AnthropicUsageSource,
    ImportedName,
    Source,
    UsageDaily,
    UsageHourly,
    UsageMonthly,
)

pytestmark = pytest.mark.django_db

ADMIN_KEY = "sk-ant-admin01-simulated-key-0123456789-abcd"
NOW = dt.datetime(2026, 11, 20, 10, 30, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def simulator():
    running = serve_in_thread(Simulator())
    yield running
    running.stop()


@pytest.fixture
def source(world, simulator, settings):
    settings.USAGE_IMPORT_BASE_URL = simulator.url
    return anthropic_import.save_admin_key(
        organization=world.org, api_key=ADMIN_KEY, actor=world.admin.user
    )


def snapshot(org_id: int) -> tuple[list, list, list]:
    fields = ("workspace_id", "api_key_id", "model", "input_tokens", "output_tokens",
              "cache_creation_input_tokens", "cache_creation_1h_input_tokens",
              "cache_read_input_tokens", "web_search_requests", "cost_micros")  # fmt: skip
    hourly = UsageHourly.objects.filter(organization_id=org_id, source=Source.IMPORTED)
    daily = UsageDaily.objects.filter(organization_id=org_id, source=Source.IMPORTED)
    monthly = UsageMonthly.objects.filter(organization_id=org_id, source=Source.IMPORTED)
    return (
        sorted(hourly.values_list("hour", *fields)),
        sorted(daily.values_list("day", *fields)),
        sorted(monthly.values_list("month", *fields)),
    )


def test_the_key_is_encrypted_at_rest_and_its_saving_audited(world, source):
    source.refresh_from_db()
    assert ADMIN_KEY not in source.api_key_encrypted
    assert crypto.decrypt(source.api_key_encrypted) == ADMIN_KEY
    assert source.key_last4 == "abcd"
    [event] = AuditEvent.objects.filter(action="usage.import_key_saved")
    assert event.after == {"api_key": "…abcd"} and ADMIN_KEY not in str(event.after)


def test_the_import_stores_what_the_report_says_priced_by_the_one_function(world, source):
    assert anthropic_import.import_usage(source.pk, now=NOW)

    hourly, daily, monthly = snapshot(world.org.pk)
    first = NOW.replace(minute=0) - anthropic_import.FIRST_IMPORT
    # Every hour of the 30 days up to now, as the simulator computes them.
    expected = Counter()
    for hour_start in (first + dt.timedelta(hours=h) for h in range(30 * 24 + 1)):
        for row in admin_report._rows_of_hour(int(hour_start.timestamp()) // 3600):
            expected["output_tokens"] += row["output_tokens"]
            expected["input_tokens"] += row["uncached_input_tokens"]
            creation = row["cache_creation"]
            usage = {
                "input_tokens": row["uncached_input_tokens"],
                "output_tokens": row["output_tokens"],
                "cache_creation_input_tokens": creation["ephemeral_5m_input_tokens"]
                + creation["ephemeral_1h_input_tokens"],
                "cache_creation_1h_input_tokens": creation["ephemeral_1h_input_tokens"],
                "cache_read_input_tokens": row["cache_read_input_tokens"],
                "web_search_requests": row["server_tool_use"]["web_search_requests"],
            }
            expected["cost"] += pricing.cost_of(row["model"], usage, hour_start).micros
    assert sum(r[4] for r in hourly) == expected["input_tokens"]
    assert sum(r[5] for r in hourly) == expected["output_tokens"]
    assert sum(r[-1] for r in hourly) == expected["cost"] > 0
    # The days hold exactly the hours, the months exactly the days.
    assert sum(r[-1] for r in daily) == sum(r[-1] for r in monthly) == expected["cost"]
    assert sum(r[5] for r in daily) == sum(r[5] for r in monthly) == expected["output_tokens"]

    # Names: Anthropic's keys and workspaces, under negative ids of their own.
    names = {n.anthropic_id: n for n in ImportedName.objects.filter(organization=world.org)}
    assert names["apikey_01SimBackend"].name == "backend-prod"
    assert names["wrkspc_01SimProduction"].name == "Production"
    key_ids = {r[2] for r in hourly}
    assert key_ids == {names[k].local_id for k in ("apikey_01SimBackend", "apikey_01SimNotebook",
                                                   "apikey_01SimLegacy")}  # fmt: skip
    assert all(i < 0 for i in key_ids)
    legacy_workspaces = {r[1] for r in hourly if r[2] == names["apikey_01SimLegacy"].local_id}
    assert legacy_workspaces == {names["default"].local_id}
    source.refresh_from_db()
    assert source.imported_through == NOW.replace(minute=0)
    assert source.last_success_at == NOW and source.last_error == ""


def test_importing_twice_gives_the_same_rollups(world, source):
    anthropic_import.import_usage(source.pk, now=NOW)
    once = snapshot(world.org.pk)
    assert {month for month, *_ in once[2]} == {dt.date(2026, 10, 1), dt.date(2026, 11, 1)}
    monthly, days_summed = months_of_days(world.org.pk)
    assert monthly == days_summed
    anthropic_import.import_usage(source.pk, now=NOW)
    assert snapshot(world.org.pk) == once
    # A fresh start (the key saved again: 30 days re-pulled) stores the same too.
    anthropic_import.save_admin_key(organization=world.org, api_key=ADMIN_KEY, actor=None)
    anthropic_import.import_usage(source.pk, now=NOW)
    assert snapshot(world.org.pk) == once


def test_a_later_import_adds_the_new_hours_and_replaces_the_recent_ones(world, source):
    anthropic_import.import_usage(source.pk, now=NOW)
    later = NOW + dt.timedelta(hours=5)
    anthropic_import.import_usage(source.pk, now=later)
    incremental = snapshot(world.org.pk)

    # Everything pulled at once, for another organization, gives the same rows.
    UsageHourly.objects.filter(source=Source.IMPORTED).delete()
    UsageDaily.objects.filter(source=Source.IMPORTED).delete()
    UsageMonthly.objects.filter(source=Source.IMPORTED).delete()
    AnthropicUsageSource.objects.filter(pk=source.pk).update(
        imported_through=NOW.replace(minute=0) - anthropic_import.FIRST_IMPORT
        + anthropic_import.REPULL
    )  # fmt: skip
    anthropic_import.import_usage(source.pk, now=later)
    assert snapshot(world.org.pk) == incremental
    assert max(r[0] for r in incremental[0]) == later.replace(minute=0)


def test_gateway_usage_in_the_same_buckets_is_left_alone(world, source):
    day = (NOW - dt.timedelta(days=1)).date()
    daily_usage(world.org, day, 5_000_000, api_key_id=7)
    anthropic_import.import_usage(source.pk, now=NOW)
    anthropic_import.import_usage(source.pk, now=NOW)
    gateway = UsageDaily.objects.get(organization_id=world.org.pk, source=Source.GATEWAY)
    assert (gateway.day, gateway.cost_micros, gateway.api_key_id) == (day, 5_000_000, 7)
    gateway = UsageMonthly.objects.get(organization_id=world.org.pk, source=Source.GATEWAY)
    assert (gateway.month, gateway.cost_micros) == (day.replace(day=1), 5_000_000)
    monthly, days_summed = months_of_days(world.org.pk)
    assert monthly == days_summed


def test_imported_keys_and_workspaces_are_filters_of_the_page_and_the_csv(
    world, source, client_for
):
    import csv
    import io
    import re

    from django.db.models import Sum

    anthropic_import.import_usage(source.pk, now=NOW)
    names = {n.anthropic_id: n for n in ImportedName.objects.filter(organization=world.org)}
    backend, production = names["apikey_01SimBackend"], names["wrkspc_01SimProduction"]
    start, end = (NOW - dt.timedelta(days=3)).date(), NOW.date()
    period = {"start": str(start), "end": str(end)}
    client = client_for(world.admin)
    url = f"/o/{world.org.slug}/usage/"

    html = client.get(url, period).content.decode()
    key_select = re.search(r'<select name="key".*?</select>', html, re.S).group(0)
    assert '<optgroup label="Imported from Anthropic">' in key_select
    assert f'<option value="{backend.local_id}">backend-prod (Anthropic, {backend.hint})' in (
        key_select
    )
    workspace_select = re.search(r'<select name="workspace".*?</select>', html, re.S).group(0)
    assert f'<option value="{production.local_id}">Production (Anthropic)' in workspace_select

    for field, name, column in (("key", backend, "api_key_id"), ("workspace", production,
                                                                  "workspace_id")):  # fmt: skip
        rows = UsageDaily.objects.filter(
            organization_id=world.org.pk, day__gte=start, day__lte=end, **{column: name.local_id}
        )
        # Anthropic's report counts tokens, not requests.
        expected = rows.aggregate(output=Sum("output_tokens"), cost=Sum("cost_micros"))
        everything = rows.model.objects.filter(
            organization_id=world.org.pk, day__gte=start, day__lte=end
        ).aggregate(o=Sum("output_tokens"))["o"]
        assert 0 < expected["output"] < everything  # the filter narrows
        page = client.get(url, {**period, field: name.local_id}).content.decode()
        assert "Some filters are not valid" not in page
        shown = re.search(r'data-testid="total-output-tokens">([0-9,]+)<', page).group(1)
        assert int(shown.replace(",", "")) == expected["output"]
        assert f'<option value="{name.local_id}" selected>' in page

        export = client.get(url, {**period, field: name.local_id, "_export": "csv"})
        lines = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
        assert sum(int(line["output_tokens"]) for line in lines) == expected["output"]
        micros = sum(int(line["cost_usd"].replace(".", "")) for line in lines)
        assert micros == expected["cost"]
        label = "api_key_name" if field == "key" else "workspace"
        assert {line[label] for line in lines} == {f"{name.name} (Anthropic)"}

    # A Member sees their own keys' gateway usage only: no imported choice, and none by URL.
    member = client_for(world.member).get(url, {**period, "key": backend.local_id})
    assert "Imported from Anthropic" not in member.content.decode()
    assert "Select a valid choice." in member.content.decode()


def test_a_key_anthropic_refuses_is_reported_and_retried_later_with_backoff(world, source):
    anthropic_import.save_admin_key(
        organization=world.org, api_key="sk-ant-admin01-revoked-key-0000000000-dead", actor=None
    )
    # The simulator refuses any non-admin key; make this one look like an ordinary key.
    AnthropicUsageSource.objects.filter(pk=source.pk).update(
        api_key_encrypted=crypto.encrypt("sk-ant-api03-not-an-admin-key-0000-dead")
    )
    assert not anthropic_import.import_usage(source.pk, now=NOW)
    source.refresh_from_db()
    assert source.last_error.startswith(
        "Anthropic refused the Admin API key ending in …dead (authentication_error: invalid "
        "x-api-key"
    )
    assert source.failures == 1
    assert source.next_attempt_at == NOW + dt.timedelta(minutes=15)
    assert not UsageHourly.objects.filter(source=Source.IMPORTED).exists()

    # Not due before its time; then due, refused again, and the wait doubles.
    assert anthropic_import.due_sources(NOW + dt.timedelta(minutes=14)) == []
    later = NOW + dt.timedelta(minutes=15)
    assert anthropic_import.import_due(now=later) == 0
    source.refresh_from_db()
    assert (source.failures, source.next_attempt_at) == (2, later + dt.timedelta(minutes=30))

    # A good key saved: the next run imports and the error is gone.
    anthropic_import.save_admin_key(organization=world.org, api_key=ADMIN_KEY, actor=None)
    assert anthropic_import.import_due(now=later) == 1
    source.refresh_from_db()
    assert (source.failures, source.last_error, source.next_attempt_at) == (0, "", None)


def test_an_unreachable_api_backs_off_too(world, source):
    AnthropicUsageSource.objects.filter(pk=source.pk).update(base_url="http://127.0.0.1:9")
    assert not anthropic_import.import_usage(source.pk, now=NOW)
    source.refresh_from_db()
    assert "could not be reached (ConnectError)" in source.last_error
    assert source.next_attempt_at == NOW + dt.timedelta(minutes=15)


def test_an_ordinary_api_key_is_refused_before_it_is_saved():
    assert "not an Admin API key" in anthropic_import.key_problem("sk-ant-api03-abc")
    assert anthropic_import.key_problem(ADMIN_KEY) is None


def test_rotating_the_encryption_keys_re_encrypts_the_admin_key_too(world, source, settings):
    from io import StringIO

    from cryptography.fernet import Fernet
    from django.core.management import call_command

    old = Fernet.generate_key().decode()
    settings.UPSTREAM_KEY_ENCRYPTION_KEYS = old
    anthropic_import.save_admin_key(organization=world.org, api_key=ADMIN_KEY, actor=None)
    new = Fernet.generate_key().decode()
    settings.UPSTREAM_KEY_ENCRYPTION_KEYS = f"{new},{old}"
    out = StringIO()
    call_command("rotate_upstream_keys", stdout=out)
    assert "1 Admin API keys of usage imports" in out.getvalue()
    settings.UPSTREAM_KEY_ENCRYPTION_KEYS = new  # the old key is gone
    source.refresh_from_db()
    assert crypto.decrypt(source.api_key_encrypted) == ADMIN_KEY


def test_removing_the_key_stops_the_import_and_keeps_what_was_imported(world, source):
    anthropic_import.import_usage(source.pk, now=NOW)
    imported = snapshot(world.org.pk)
    anthropic_import.remove_admin_key(source=source, actor=world.admin.user)
    assert not AnthropicUsageSource.objects.exists()
    assert anthropic_import.import_due(now=NOW + dt.timedelta(hours=1)) == 0
    assert snapshot(world.org.pk) == imported
    [event] = AuditEvent.objects.filter(action="usage.import_key_removed")
    assert event.before == {"api_key": "…abcd"}


def test_an_admin_saves_the_key_on_the_import_page_and_sees_how_it_went(
    world, client_for, simulator, settings
):
    settings.USAGE_IMPORT_BASE_URL = simulator.url
    client = client_for(world.admin)
    url = f"/o/{world.org.slug}/usage/import/"
    page = client.get(url)
    assert page.status_code == 200 and b"No Admin API key yet" in page.content

    refused = client.post(url, {"action": "save", "api_key": "sk-ant-api03-ordinary-key-123456"})
    assert refused.status_code == 200
    assert b"This is not an Admin API key" in refused.content
    assert not AnthropicUsageSource.objects.exists()

    saved = client.post(url, {"action": "save", "api_key": ADMIN_KEY})
    assert saved.status_code == 302
    source = AnthropicUsageSource.objects.get(organization=world.org)
    assert ADMIN_KEY.encode() not in client.get(url).content
    anthropic_import.import_usage(source.pk, now=NOW)
    page = client.get(url).content.decode()
    assert "…abcd" in page and "backend-prod" in page and 'data-testid="import-error"' not in page

    # On the usage page the imported keys and workspaces have their Anthropic names.
    start, end = (NOW - dt.timedelta(days=3)).date(), NOW.date()
    usage = client.get(f"/o/{world.org.slug}/usage/?start={start}&end={end}&source=imported")
    assert usage.status_code == 200
    assert "backend-prod (Anthropic)" in usage.content.decode()

    # Anthropic refuses the key: the page says so in words.
    AnthropicUsageSource.objects.filter(pk=source.pk).update(
        api_key_encrypted=crypto.encrypt("sk-ant-api03-not-an-admin-key-0000-abcd")
    )
    anthropic_import.import_usage(source.pk, now=NOW)
    page = client.get(url).content.decode()
    assert 'data-testid="import-error"' in page
    assert "Anthropic refused the Admin API key ending in …abcd" in page
    assert "Next attempt:" in page


def test_removing_the_key_from_the_page_asks_first(world, client_for, source):
    client = client_for(world.admin)
    url = f"/o/{world.org.slug}/usage/import/remove/"
    confirm = client.get(url)
    assert confirm.status_code == 200 and b"Remove the Admin API key \xe2\x80\xa6abcd?" in (
        confirm.content
    )
    assert AnthropicUsageSource.objects.exists()
    assert client.post(url).status_code == 302
    assert not AnthropicUsageSource.objects.exists()
    assert AuditEvent.objects.filter(action="usage.import_key_removed").count() == 1
