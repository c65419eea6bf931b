"""The model catalogue the simulator serves at ``GET /v1/models``.

Shapes follow Anthropic's Models API: newest first, ``type: "model"``, RFC 3339 ``created_at``.
Aliases (``claude-sonnet-4-5`` ...) resolve on ``GET /v1/models/{id}`` like the real API, but are
not listed. ``POST /v1/messages`` accepts any model id and echoes it, so tests may use ids that are
not in this table.
"""

from __future__ import annotations

from typing import Any

# (id, display name, release date, max output tokens), newest first.
_TABLE: tuple[tuple[str, str, str, int], ...] = (
    ("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24", 64_000),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15", 64_000),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29", 64_000),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05", 32_000),
    ("claude-opus-4-20250514", "Claude Opus 4", "2025-05-22", 32_000),
    ("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22", 64_000),
    ("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-24", 64_000),
    ("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22", 8_192),
    ("claude-3-haiku-20240307", "Claude Haiku 3", "2024-03-07", 4_096),
)

MODELS: tuple[dict[str, Any], ...] = tuple(
    {
        "type": "model",
        "id": model_id,
        "display_name": display_name,
        "created_at": f"{released}T00:00:00Z",
        "max_input_tokens": 200_000,
        "max_tokens": max_tokens,
        "lifecycle": "active",
    }
    for model_id, display_name, released, max_tokens in _TABLE
)

ALIASES: dict[str, str] = {
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-opus-4-0": "claude-opus-4-20250514",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}

_BY_ID: dict[str, dict[str, Any]] = {model["id"]: model for model in MODELS}
_POSITION: dict[str, int] = {model["id"]: i for i, model in enumerate(MODELS)}


def get_model(model_id: str) -> dict[str, Any] | None:
    return _BY_ID.get(ALIASES.get(model_id, model_id))


def list_page(
    limit: int = 20, after_id: str | None = None, before_id: str | None = None
) -> dict[str, Any]:
    """One page of the catalogue, paginated by cursor like the real endpoint."""
    if before_id is not None:
        end = _POSITION.get(before_id, 0)
        start = max(0, end - limit)
        page = MODELS[start:end]
        has_more = start > 0
    else:
        if after_id is None:
            start = 0
        else:  # an unknown cursor yields an empty page rather than restarting the listing
            start = _POSITION[after_id] + 1 if after_id in _POSITION else len(MODELS)
        page = MODELS[start : start + limit]
        has_more = start + limit < len(MODELS)
    return {
        "data": list(page),
        "has_more": has_more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }
