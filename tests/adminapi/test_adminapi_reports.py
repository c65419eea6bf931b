"""usage_report/messages and cost_report over plain HTTP, from real gateway traffic (simulator
upstream, events through the Redis stream into the rollups), equal to the dashboard's figures
(usage.selectors) for the same period and filters."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from adminapi import ids
from apikeys.services import create_api_key
from tests.gateway.conftest import MODEL, events_for
from usage import selectors as usage_selectors

pytestmark = pytest.mark.django_db(transaction=True)

OTHER_MODEL = "claude-opus-4-5"


def traffic(gw, world) -> tuple:
    """Two keys, two workspaces, two models; returns the events once ingested."""
    dev_key = create_api_key(
        membership=world.member, workspace=world.workspace, name="dev", actor=None
    )
    with gw.client() as admin_client, gw.client(dev_key.plaintext) as dev_client:
        for client, model, n in ((admin_client, MODEL, 2), (dev_client, OTHER_MODEL, 3)):
            for i in range(n):
                client.messages.create(
                    model=model,
                    max_tokens=32,
                    messages=[{"role": "user", "content": f"Question {i} " * (i + 1)}],
                )
    events = events_for(gw.org.pk, 5)
    assert len(events) == 5
    return dev_key.key, events


def day_range() -> tuple[str, str, dt.date]:
    today = timezone.now().astimezone(dt.UTC).date()
    start = dt.datetime.combine(today, dt.time.min, tzinfo=dt.UTC)
    return start.isoformat(), (start + dt.timedelta(days=1)).isoformat(), today


def test_usage_report_equals_the_dashboards_figures(admin_api, gw):
    world = admin_api.world
    dev_key, events = traffic(gw, world)
    starting_at, ending_at, today = day_range()
    with admin_api.http() as http:
        daily = http.get(
            "/v1/organizations/usage_report/messages",
            params={"starting_at": starting_at, "ending_at": ending_at, "group_by[]": ["model"]},
        ).json()
        by_key = http.get(
            "/v1/organizations/usage_report/messages",
            params={
                "starting_at": starting_at,
                "ending_at": ending_at,
                "bucket_width": "1h",
                "group_by[]": ["api_key_id", "workspace_id"],
                "api_key_ids[]": [ids.encode("api_key", dev_key.pk)],
            },
        ).json()
        minutes = http.get(
            "/v1/organizations/usage_report/messages",
            params={"starting_at": events[0].created_at.isoformat(), "bucket_width": "1m"},
        ).json()
    [bucket] = daily["data"]
    assert bucket["starting_at"].startswith(today.isoformat())
    assert daily["has_more"] is False and daily["next_page"] is None
    for model in (MODEL, OTHER_MODEL):
        scope = usage_selectors.UsageScope(
            organization=world.org, start=today, end=today, model=model
        )
        dashboard = usage_selectors.totals(scope)
        [line] = [r for r in bucket["results"] if r["model"] == model]
        assert line["uncached_input_tokens"] == dashboard.input_tokens > 0
        assert line["output_tokens"] == dashboard.output_tokens > 0
        assert line["cache_read_input_tokens"] == dashboard.cache_read_input_tokens
        assert line["api_key_id"] is None and line["workspace_id"] is None
    assert len(by_key["data"]) == 24
    lines = [r for b in by_key["data"] for r in b["results"]]
    assert {r["api_key_id"] for r in lines} == {ids.encode("api_key", dev_key.pk)}
    assert {r["workspace_id"] for r in lines} == {ids.encode("workspace", world.workspace.pk)}
    dev_scope = usage_selectors.UsageScope(
        organization=world.org, start=today, end=today, api_key_id=dev_key.pk
    )
    assert sum(r["output_tokens"] for r in lines) == usage_selectors.totals(dev_scope).output_tokens
    minute_total = sum(r["output_tokens"] for b in minutes["data"] for r in b["results"])
    assert minute_total == sum(e.output_tokens for e in events)


def test_cost_report_equals_the_dashboards_cost_in_cents(admin_api, gw):
    world = admin_api.world
    traffic(gw, world)
    starting_at, ending_at, today = day_range()
    with admin_api.http() as http:
        plain = http.get(
            "/v1/organizations/cost_report",
            params={"starting_at": starting_at, "ending_at": ending_at},
        ).json()
        grouped = http.get(
            "/v1/organizations/cost_report",
            params={
                "starting_at": starting_at,
                "ending_at": ending_at,
                "group_by[]": ["workspace_id", "description"],
            },
        ).json()
    dashboard = usage_selectors.totals(
        usage_selectors.UsageScope(organization=world.org, start=today, end=today)
    )
    [line] = plain["data"][0]["results"]
    assert line["currency"] == "USD"
    assert Decimal(line["amount"]) == Decimal(dashboard.cost_micros) / 10_000 > 0
    lines = grouped["data"][0]["results"]
    assert {(r["workspace_id"], r["model"]) for r in lines} == {
        (None, MODEL),
        (ids.encode("workspace", world.workspace.pk), OTHER_MODEL),
    }
    assert sum(Decimal(r["amount"]) for r in lines) == Decimal(line["amount"])
    assert all(r["cost_type"] == "tokens" and r["description"] for r in lines)


def test_report_pages_follow_next_page(admin_api):
    start = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    seen = []
    page = None
    with admin_api.http() as http:
        for _ in range(5):
            params = {
                "starting_at": start.isoformat(),
                "ending_at": (start + dt.timedelta(days=20)).isoformat(),
                "limit": 7,
            }
            if page:
                params["page"] = page
            answer = http.get("/v1/organizations/usage_report/messages", params=params).json()
            seen += [b["starting_at"] for b in answer["data"]]
            page = answer["next_page"]
            if not answer["has_more"]:
                break
    assert len(seen) == 20 and len(set(seen)) == 20
    assert seen[0].startswith("2026-10-01") and seen[-1].startswith("2026-10-20")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "starting_at"),
        ({"starting_at": "yesterday"}, "starting_at"),
        ({"starting_at": "2026-11-01T00:00:00"}, "starting_at"),
        ({"starting_at": "2026-11-02T00:00:00Z", "ending_at": "2026-11-01T00:00:00Z"}, "ending_at"),
        ({"starting_at": "2026-11-01T00:00:00Z", "bucket_width": "1w"}, "bucket_width"),
        (
            {"starting_at": "2026-09-01T00:00:00Z", "ending_at": "2026-11-01T00:00:00Z"},
            "bucket_width",
        ),
        (
            {
                "starting_at": "2026-11-01T00:00:00Z",
                "ending_at": "2026-11-09T01:00:00Z",
                "bucket_width": "1h",
            },
            "bucket_width",
        ),
        ({"starting_at": "2026-11-01T00:00:00Z", "group_by[]": "service_tier"}, "group_by[0]"),
        ({"starting_at": "2026-11-01T00:00:00Z", "limit": "32"}, "limit"),
        ({"starting_at": "2026-11-01T00:00:00Z", "limit": "0"}, "limit"),
        ({"starting_at": "2026-11-01T00:00:00Z", "page": "nonsense"}, "page"),
        ({"starting_at": "2026-11-01T00:00:00Z", "api_key_ids[]": "apikey_x"}, "api_key_ids[0]"),
    ],
)
def test_bad_report_parameters_name_the_field(admin_api, params, field):
    with admin_api.http() as http:
        answer = http.get("/v1/organizations/usage_report/messages", params=params)
        cost = http.get(
            "/v1/organizations/cost_report",
            params={"starting_at": "2026-11-01T00:00:00Z", "group_by[]": "model"},
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert answer.json()["error"]["message"].startswith(f"{field}: "), answer.text
    assert cost.status_code == 400 and cost.json()["error"]["message"].startswith("group_by[0]: ")
