"""Log lines: plain text by default, one JSON object per line with `LOG_FORMAT=json` (for log
shippers). A record may carry `fields` (a dict, passed as `extra={"fields": {...}}`): the JSON
line holds them as top-level keys beside time, level, logger and message; the plain line has
them in its message already. The request lines of the console (console/request_log.py) and of
the gateway (gateway/app.py) are written this way.

Nothing secret is put in a record by this code: request lines carry ids, paths without query
strings (invitation tokens redacted), statuses and timings, never headers or bodies.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                data.setdefault(key, value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        return orjson.dumps(data, default=str).decode()


PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def from_environment() -> logging.Formatter:
    """The formatter `LOG_FORMAT` asks for, for a process that logs before (or without) Django's
    settings: uvicorn's own lines, configured by console/uvicorn-logging.json."""
    if os.environ.get("LOG_FORMAT", "plain") == "json":
        return JsonFormatter()
    return logging.Formatter(PLAIN_FORMAT)
