"""The simulator's part of Anthropic's Admin API that the usage import reads
(usage/anthropic_import.py): the Messages usage report and the names of keys and workspaces.

    GET /v1/organizations/usage_report/messages   starting_at, ending_at, bucket_width (1h/1d),
                                                  group_by[] (api_key_id, workspace_id, model),
                                                  limit, page (the previous `next_page`)
    GET /v1/organizations/api_keys                limit, after_id
    GET /v1/organizations/workspaces              limit, after_id

Only Admin API keys (``sk-ant-admin…``) are accepted there; any other key is a 401
``authentication_error``, as Anthropic answers an ordinary API key on these paths.

The data are deterministic: the usage of an hour is a function of that hour alone, so a
re-pulled bucket is always the same and tests can compute what an import must store. Three keys in
two workspaces and the default one (``workspace_id`` null, as Anthropic reports it); a key is idle
in some hours (no row).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

ADMIN_KEY_PREFIX = "sk-ant-admin"

WORKSPACES = [
    {"id": "wrkspc_01SimProduction", "name": "Production"},
    {"id": "wrkspc_01SimResearch", "name": "Research"},
]
API_KEYS = [
    # (id, name, workspace id or None for the default workspace, its models)
    ("apikey_01SimBackend", "backend-prod", "wrkspc_01SimProduction",
     ("claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001")),
    ("apikey_01SimNotebook", "research-notebook", "wrkspc_01SimResearch",
     ("claude-opus-4-1-20250805",)),
    ("apikey_01SimLegacy", "legacy-script", None, ("claude-haiku-4-5-20251001",)),
]  # fmt: skip
CREATED_AT = "2025-06-01T09:00:00Z"
GROUPS = ("api_key_id", "workspace_id", "model")
MAX_LIMIT = {"1h": 168, "1d": 31}
DEFAULT_LIMIT = {"1h": 24, "1d": 7}


class BadRequest(ValueError):
    pass


def is_admin_key(key: str) -> bool:
    return key.startswith(ADMIN_KEY_PREFIX)


def _hour_usage(hour: int, slot: int) -> dict[str, Any] | None:
    """The usage of one key × model in the hour numbered `hour` (hours since the epoch)."""
    activity = (hour * 7919 + slot * 104729) % 11
    if activity < 3:
        return None
    return {
        "uncached_input_tokens": 900 * activity + (hour % 97) * 13,
        "cache_creation": {
            "ephemeral_5m_input_tokens": 120 * (activity % 4),
            "ephemeral_1h_input_tokens": 40 * (activity % 3),
        },
        "cache_read_input_tokens": 2_000 * (activity % 5),
        "output_tokens": 250 * activity + (hour % 31) * 7,
        "server_tool_use": {"web_search_requests": activity // 5},
    }


def _rows_of_hour(hour: int) -> list[dict[str, Any]]:
    rows = []
    slot = 0
    for key_id, _name, workspace_id, models in API_KEYS:
        for model in models:
            slot += 1
            usage = _hour_usage(hour, slot)
            if usage is not None:
                rows.append(
                    {"api_key_id": key_id, "workspace_id": workspace_id, "model": model, **usage}
                )
    return rows


def _add(total: dict[str, Any], row: dict[str, Any]) -> None:
    for name in ("uncached_input_tokens", "cache_read_input_tokens", "output_tokens"):
        total[name] += row[name]
    for name in ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"):
        total["cache_creation"][name] += row["cache_creation"][name]
    total["server_tool_use"]["web_search_requests"] += row["server_tool_use"]["web_search_requests"]


def _grouped(rows: list[dict[str, Any]], group_by: list[str]) -> list[dict[str, Any]]:
    groups: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[g] if g in group_by else None for g in GROUPS)
        total = groups.get(key)
        if total is None:
            total = groups[key] = {
                **dict(zip(GROUPS, key, strict=True)),
                "service_tier": None,
                "context_window": None,
                "uncached_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "cache_read_input_tokens": 0,
                "output_tokens": 0,
                "server_tool_use": {"web_search_requests": 0},
            }
        _add(total, row)
    return list(groups.values())


def _instant(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: Input should be a valid RFC 3339 datetime") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _page_token(moment: datetime) -> str:
    return "page_" + base64.urlsafe_b64encode(_iso(moment).encode()).decode()


def _from_token(token: str) -> datetime:
    try:
        return _instant(base64.urlsafe_b64decode(token.removeprefix("page_")).decode(), "page")
    except (binascii.Error, UnicodeDecodeError):
        raise BadRequest("page: Invalid page token") from None


def usage_report(query: str, now: datetime | None = None) -> dict[str, Any]:
    params = parse_qs(query)
    if "starting_at" not in params:
        raise BadRequest("starting_at: Field required")
    width = params.get("bucket_width", ["1d"])[0]
    if width not in MAX_LIMIT:
        raise BadRequest("bucket_width: Input should be '1d' or '1h' (the simulator has no '1m')")
    step = timedelta(hours=1) if width == "1h" else timedelta(days=1)
    try:
        limit = int(params.get("limit", [DEFAULT_LIMIT[width]])[0])
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT[width]:
        raise BadRequest(f"limit: Input should be between 1 and {MAX_LIMIT[width]}")
    group_by = params.get("group_by[]", []) + params.get("group_by", [])
    if unknown := [g for g in group_by if g not in GROUPS]:
        raise BadRequest(f"group_by: the simulator groups by {', '.join(GROUPS)} only: {unknown}")
    start = _instant(params["starting_at"][0], "starting_at")
    start = start.replace(minute=0, second=0, microsecond=0)
    if width == "1d":
        start = start.replace(hour=0)
    if "page" in params:
        start = _from_token(params["page"][0])
    end = _instant(params["ending_at"][0], "ending_at") if "ending_at" in params else None
    end = end or (now or datetime.now(UTC))
    data = []
    bucket = start
    while bucket < end and len(data) < limit:
        first_hour = int(bucket.timestamp()) // 3600
        hours = range(first_hour, first_hour + (1 if width == "1h" else 24))
        rows = [row for hour in hours for row in _rows_of_hour(hour)]
        data.append(
            {
                "starting_at": _iso(bucket),
                "ending_at": _iso(bucket + step),
                "results": _grouped(rows, group_by) if rows else [],
            }
        )
        bucket += step
    has_more = bucket < end
    next_page = _page_token(bucket) if has_more else None
    return {"data": data, "has_more": has_more, "next_page": next_page}


def _listing(items: list[dict[str, Any]], query: str) -> dict[str, Any]:
    params = parse_qs(query)
    try:
        limit = int(params.get("limit", ["20"])[0])
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise BadRequest("limit: Input should be an integer between 1 and 1000")
    after = params.get("after_id", [None])[0]
    ids = [item["id"] for item in items]
    first = ids.index(after) + 1 if after in ids else 0
    page = items[first : first + limit]
    return {
        "data": page,
        "has_more": first + limit < len(items),
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


def workspaces(query: str) -> dict[str, Any]:
    items = [
        {
            "type": "workspace",
            "id": workspace["id"],
            "name": workspace["name"],
            "display_color": "#6C5BB9",
            "created_at": CREATED_AT,
            "archived_at": None,
        }
        for workspace in WORKSPACES
    ]
    return _listing(items, query)


def api_keys(query: str) -> dict[str, Any]:
    items = [
        {
            "type": "api_key",
            "id": key_id,
            "name": name,
            "workspace_id": workspace_id,
            "created_at": CREATED_AT,
            "created_by": {"id": "user_01SimAdmin", "type": "user"},
            "partial_key_hint": f"sk-ant-api03-{key_id[-4:]}...{key_id[7:11]}",
            "status": "active",
        }
        for key_id, name, workspace_id, _models in API_KEYS
    ]
    return _listing(items, query)


ROUTES = {
    "/v1/organizations/usage_report/messages": usage_report,
    "/v1/organizations/api_keys": api_keys,
    "/v1/organizations/workspaces": workspaces,
}
