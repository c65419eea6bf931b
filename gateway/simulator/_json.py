"""JSON helpers: orjson when installed (several times faster on the hot path), else stdlib."""

from __future__ import annotations

from typing import Any

try:
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def dumps_sorted(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)

    loads = orjson.loads
    JSONDecodeError: type[Exception] = orjson.JSONDecodeError

except ImportError:  # pragma: no cover - exercised only where orjson is absent
    import json

    _compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    _compact_sorted = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True)

    def dumps(obj: Any) -> bytes:
        return _compact.encode(obj).encode()

    def dumps_sorted(obj: Any) -> bytes:
        return _compact_sorted.encode(obj).encode()

    def loads(data: bytes | str) -> Any:
        return json.loads(data)

    JSONDecodeError = ValueError  # json.JSONDecodeError and UnicodeDecodeError are both ValueError


__all__ = ["JSONDecodeError", "dumps", "dumps_sorted", "loads"]
