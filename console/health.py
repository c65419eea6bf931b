"""Operations endpoints: /healthz (the process answers), /readyz (it can serve: database, Redis,
a live ingestion worker, usage not falling behind) and /metrics (Prometheus).

They are answered by `HealthEndpointsMiddleware`, first in the middleware list, before the host
check and the HTTPS redirect: a load balancer or an orchestrator probes a container by its own
address over plain http. /metrics is for the operator's scraper only: a bearer token
(`METRICS_TOKEN`) or a connection from `METRICS_ALLOWED_NETWORKS` that came through no proxy.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from billing.selectors import alert_counts
from core import hotpath
from usage.health import pipeline_state

logger = logging.getLogger(__name__)

# An ingestion worker must have beaten within this many seconds (consumers beat every second).
HEARTBEAT_MAX_AGE = 60.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _fault(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:200]


def readiness(now: float | None = None) -> list[Check]:
    checks = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks.append(Check("database", True, "ok"))
    except DatabaseError as exc:
        connection.close()  # the next request reconnects
        checks.append(Check("database", False, _fault(exc)))
    try:
        client = hotpath.client()
        client.ping()
        state = pipeline_state(client, now)
    except (redis.RedisError, OSError) as exc:
        checks.append(Check("redis", False, _fault(exc)))
        checks.append(Check("worker", False, "not checked: Redis did not answer"))
        checks.append(Check("usage_lag", False, "not checked: Redis did not answer"))
        return checks
    checks.append(Check("redis", True, "ok"))
    age = state.heartbeat_age
    if age is None:
        checks.append(Check("worker", False, "no usage ingestion worker has ever run"))
    elif age > HEARTBEAT_MAX_AGE:
        checks.append(Check("worker", False, f"no worker heartbeat for {age:.0f} s"))
    else:
        checks.append(Check("worker", True, f"last heartbeat {age:.1f} s ago"))
    bound = settings.READYZ_MAX_USAGE_LAG
    lag = f"{state.length} entries waiting, oldest {state.lag_seconds:.1f} s (bound {bound} s)"
    checks.append(Check("usage_lag", state.lag_seconds <= bound, lag))
    return checks


def readyz(request) -> HttpResponse:
    checks = readiness()
    failing = [check.name for check in checks if not check.ok]
    body = {
        "status": "ready" if not failing else "not ready: " + ", ".join(failing),
        "failing": failing,
        "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in checks},
    }
    if failing:
        logger.warning("Not ready: %s", "; ".join(f"{c.name}: {c.detail}" for c in checks))
    return JsonResponse(body, status=503 if failing else 200)


def healthz(request) -> HttpResponse:
    """The process answers (and reaches its database: a process that cannot is no use)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        connection.close()
        return HttpResponse(f"database: {_fault(exc)}", status=503, content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")


# -- /metrics ----------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _networks(spec: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(net.strip(), strict=False) for net in spec if net.strip())


def metrics_allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer "):
        return constant_time_compare(header[7:].strip(), token)
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False  # through a proxy: from outside, whatever the connection's address
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in net for net in _networks(tuple(settings.METRICS_ALLOWED_NETWORKS)))


class PipelineCollector:
    """Read at each scrape: the usage stream (length, lag, ingestion counters, the worker's
    heartbeat) from Redis and the spending alerts sent from the database."""

    def collect(self):
        up = GaugeMetricFamily("console_redis_up", "1 when Redis answered this scrape.")
        try:
            state = pipeline_state()
        except (redis.RedisError, OSError) as exc:
            logger.warning("Metrics: Redis did not answer (%s)", _fault(exc))
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            yield GaugeMetricFamily(
                "usage_stream_length", "Usage stream entries waiting for ingestion.", state.length
            )
            yield GaugeMetricFamily(
                "usage_stream_lag_seconds",
                "Age of the oldest usage stream entry not yet ingested.",
                state.lag_seconds,
            )
            if state.heartbeat_age is not None:
                yield GaugeMetricFamily(
                    "usage_worker_heartbeat_age_seconds",
                    "Seconds since an ingestion worker last beat.",
                    state.heartbeat_age,
                )
            yield CounterMetricFamily(
                "usage_events_ingested",
                "Usage events stored since the stream began (rate(): the ingestion rate).",
                state.stored,
            )
            yield CounterMetricFamily(
                "usage_events_duplicate",
                "Usage events delivered again and stored once.",
                state.duplicates,
            )
            yield GaugeMetricFamily(
                "usage_dead_letter_entries",
                "Usage events refused by ingestion, kept on the dead-letter stream.",
                state.refused,
            )
        try:
            counts = alert_counts()
        except DatabaseError as exc:
            logger.warning("Metrics: the database did not answer (%s)", _fault(exc))
            return
        yield CounterMetricFamily(
            "billing_alerts_sent", "Spending alerts sent (every organization).", counts["sent"]
        )
        yield GaugeMetricFamily(
            "billing_alerts_pending", "Spending alerts claimed, email not sent yet.",
            counts["pending"],
        )  # fmt: skip


def metrics(request) -> HttpResponse:
    if not metrics_allowed(request):
        return HttpResponse(
            "Forbidden: /metrics needs METRICS_TOKEN or an address in METRICS_ALLOWED_NETWORKS.",
            status=403,
            content_type="text/plain",
        )
    started = time.perf_counter()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
        output = generate_latest(processes)
    else:
        output = generate_latest(REGISTRY)
    pipeline = CollectorRegistry()
    pipeline.register(PipelineCollector())
    output += generate_latest(pipeline)
    output += (
        b"# HELP console_metrics_scrape_seconds Time this scrape took.\n"
        b"# TYPE console_metrics_scrape_seconds gauge\n"
        b"console_metrics_scrape_seconds %.6f\n" % (time.perf_counter() - started)
    )
    return HttpResponse(output, content_type=CONTENT_TYPE_LATEST)


ENDPOINTS = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


class HealthEndpointsMiddleware:
    """Answers the operations endpoints before anything else runs (see the module's text)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        view = ENDPOINTS.get(request.path_info)
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)
