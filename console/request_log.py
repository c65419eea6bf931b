"""One log line per console request (the gateway writes its own: gateway/app.py), on the
`console.requests` logger:

    request creq_… GET /o/acme/api-keys/ 200 12.3ms org=acme user=7

with the same values as fields in `LOG_FORMAT=json`. The request id is the proxy's
`X-Request-ID` when it sends a plausible one, else a new one; the response carries it back.
Paths are logged without their query string, invitation tokens redacted. The operations
endpoints answered before this middleware (console/health.py) are not logged.
"""

from __future__ import annotations

import logging
import random
import re
import time

from .log_redaction import redact

logger = logging.getLogger("console.requests")
INCOMING_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")


def new_request_id() -> str:
    return f"req_c_{time.time_ns() // 1000:014x}{random.getrandbits(48):012x}"


class RequestLogMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = incoming if INCOMING_ID.fullmatch(incoming) else new_request_id()
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        if logger.isEnabledFor(logging.INFO):
            self.log(request, response, (time.perf_counter() - started) * 1000)
        return response

    @staticmethod
    def log(request, response, ms: float) -> None:
        match = getattr(request, "resolver_match", None)
        org = (match.kwargs.get("slug") if match else None) or "-"
        user = getattr(request, "user", None)
        user_id = user.pk if user is not None and user.is_authenticated else None
        path = redact(request.path)
        logger.info(
            "request %s %s %s %d %.1fms org=%s user=%s",
            request.request_id, request.method, path, response.status_code, ms, org,
            user_id or "-",
            extra={"fields": {
                "request_id": request.request_id, "method": request.method, "path": path,
                "status": response.status_code, "latency_ms": round(ms, 1),
                "organization": None if org == "-" else org, "user_id": user_id,
            }},
        )  # fmt: skip
