"""Realistic demo usage for `manage.py seed_demo`, stored through the real ingestion path
(`usage.ingest.store_events`: events, hourly and daily rollups, exactly once).

Each demo key has a profile (models, requests on a working day, prompt and answer sizes, prompt
caching, web searches, errors); days follow a weekly rhythm (weekends quiet) and working hours
in the organization's zone, and one day a key runs away (the spike). Everything is drawn from a
generator seeded by the key's name and the date, and request ids are made from them too: seeding
again on the same day stores nothing new, and on a later day adds only the days not stored yet.
"""

from __future__ import annotations

import random
import zlib
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from . import pricing
from .ingest import store_events

STORE_BATCH = 2000
# Weekday factors, Monday first: the week's rhythm.
WEEK = (1.0, 1.1, 1.05, 1.0, 0.85, 0.25, 0.15)
# Share of a working day's requests in each local hour (a day at the office, lunch dip).
HOURS = {
    7: 2, 8: 6, 9: 10, 10: 11, 11: 10, 12: 6, 13: 8, 14: 11, 15: 11, 16: 9, 17: 6, 18: 4,
    19: 2, 20: 2, 21: 1, 22: 1,
}  # fmt: skip


@dataclass(frozen=True)
class KeyProfile:
    name: str
    models: tuple[str, ...]  # the first is used most
    per_day: int  # requests on an ordinary working day
    input_tokens: int  # typical prompt (uncached part)
    output_tokens: int  # typical answer
    cached_prompt: int = 0  # a system prompt cached with a 5-minute TTL (0: no caching)
    web_searches: float = 0.0  # mean web searches a request
    error_rate: float = 0.01
    nightly: bool = False  # a batch job at 02:00, every day


@dataclass(frozen=True)
class DemoKey:
    profile: KeyProfile
    api_key_id: int
    workspace_id: int


def _rng(*parts) -> random.Random:
    return random.Random(zlib.crc32("|".join(map(str, parts)).encode()))


def _usage(profile: KeyProfile, rng: random.Random, heavy: bool) -> dict:
    scale = rng.lognormvariate(0, 0.5) * (3 if heavy else 1)
    usage = {
        "input_tokens": max(1, int(profile.input_tokens * scale)),
        "output_tokens": max(1, int(profile.output_tokens * rng.lognormvariate(0, 0.6) * scale)),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "web_search_requests": 0,
    }
    if profile.cached_prompt:
        if rng.random() < 0.12:  # the cache expired: written again
            usage["cache_creation_input_tokens"] = profile.cached_prompt
        else:
            usage["cache_read_input_tokens"] = profile.cached_prompt
    if profile.web_searches:
        usage["web_search_requests"] = min(5, int(rng.expovariate(1 / profile.web_searches)))
    return usage


_ERRORS = ((529, "overloaded_error"), (429, "rate_limit_error"), (500, "api_error"))


def day_events(
    organization_id: int, key: DemoKey, day: date, zone: zoneinfo.ZoneInfo, *, spike: bool
) -> list[dict]:
    """The events of one key on one local day, as the gateway publishes them."""
    profile = key.profile
    rng = _rng(profile.name, day.isoformat())
    if profile.nightly:
        count = profile.per_day
        hours = {2: 1}
    else:
        count = round(profile.per_day * WEEK[day.weekday()] * rng.uniform(0.8, 1.2))
        hours = HOURS
    if spike:
        count *= 6
        hours = {h: 1 for h in range(9, 24)}  # an agent loop left running into the night
    events = []
    weights = list(hours.values())
    for n in range(count):
        hour = rng.choices(list(hours), weights)[0]
        local = datetime.combine(day, time(hour), tzinfo=zone) + timedelta(
            seconds=rng.uniform(0, 3600)
        )
        moment = local.astimezone(UTC)
        model = profile.models[0] if rng.random() < 0.8 else rng.choice(profile.models)
        stream = rng.random() < 0.4
        event = {
            "request_id": f"req_demo_{zlib.crc32(profile.name.encode()):08x}_{day:%Y%m%d}_{n:05d}",
            "upstream_request_id": "",
            "time": moment.timestamp(),
            "organization_id": organization_id,
            "workspace_id": key.workspace_id,
            "api_key_id": key.api_key_id,
            "endpoint": "messages",
            "model": model,
            "stream": stream,
            "latency_ms": round(rng.uniform(400, 9000), 3),
            "service_tier": "standard",
        }
        if rng.random() < profile.error_rate:
            status, error = rng.choice(_ERRORS)
            event |= {"status": status, "error_type": error, "cost_micros": 0}
        else:
            usage = _usage(profile, rng, heavy=spike)
            cost = pricing.cost_of(model, usage, moment)
            event |= {
                "status": 200,
                "error_type": "",
                **usage,
                "cost_micros": cost.micros,
                "server_tool_cost_micros": cost.server_tools,
                "fallback_priced": cost.fallback,
            }
        events.append(event)
    return events


def seed_usage(
    organization_id: int,
    zone_name: str,
    keys: list[DemoKey],
    *,
    days: int = 30,
    spike_key: str | None = None,
    spike_days_ago: int = 9,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Store `days` days of usage of `keys`, up to now. Returns (events stored, events that were
    there already)."""
    now = now or datetime.now(UTC)
    zone = zoneinfo.ZoneInfo(zone_name)
    today = now.astimezone(zone).date()
    events = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        for key in keys:
            spike = key.profile.name == spike_key and back == spike_days_ago
            events.extend(
                e for e in day_events(organization_id, key, day, zone, spike=spike)
                if e["time"] <= now.timestamp()
            )  # fmt: skip
    stored = duplicates = 0
    for start in range(0, len(events), STORE_BATCH):
        result = store_events(events[start : start + STORE_BATCH], now=now.timestamp())
        if result.refused:
            raise ValueError(f"demo events refused: {result.refused[0][1]}")
        stored += result.inserted
        duplicates += result.duplicates
    return stored, duplicates
