"""The gateway's Prometheus metrics, counted on the request path (exposed by /metrics,
console/health.py). With `PROMETHEUS_MULTIPROC_DIR` set (docker-compose.yml, `make run`) each
uvicorn worker writes its values to a file there and /metrics adds up every worker's;
prometheus-client picks the mode when it is first imported, so the variable must be set before
the process starts. What one request costs: a dict lookup for the model's label, two label
lookups and three increments (bench/bench_gateway.py measured it: docs/decisions/0018).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram, disable_created_metrics

disable_created_metrics()  # the *_created series: as many again, and nobody reads them

REQUESTS = Counter(
    "gateway_requests",
    "Gateway requests answered, by endpoint, HTTP status and model.",
    ["endpoint", "status", "model"],
)
LATENCY = Histogram(
    "gateway_request_duration_seconds",
    "Time from the request's arrival to its last byte relayed (streams: the whole stream).",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors",
    "Upstream failures: unreachable, timeout, not_api (an answer not from the API), "
    "overloaded (429/529), server_error (5xx), stream_error (an error event mid-stream).",
    ["kind"],
)
RESERVATIONS_REFUSED = Counter(
    "gateway_reservations_refused",
    "Requests refused because a spending cap (key, workspace, organization, credits or the "
    "shared upstream's allowance) would be exceeded.",
)

MAX_MODELS = 200  # distinct model labels; past it, "other" (clients choose the model string)
_model_labels: dict[str, str] = {}


def model_label(model: str) -> str:
    """The model's label: "none" before a model is known (a refused key), "other" past the
    first `MAX_MODELS` distinct models."""
    if not model:
        return "none"
    label = _model_labels.get(model)
    if label is None:
        label = model if len(_model_labels) < MAX_MODELS else "other"
        if label != "other":
            _model_labels[model] = label
    return label


def observe(endpoint: str, status: int, model: str, seconds: float) -> None:
    REQUESTS.labels(endpoint, str(status), model_label(model)).inc()
    LATENCY.labels(endpoint).observe(seconds)


def upstream_error(kind: str) -> None:
    UPSTREAM_ERRORS.labels(kind).inc()


def upstream_status(status: int) -> None:
    if status in (429, 529):
        UPSTREAM_ERRORS.labels("overloaded").inc()
    elif status >= 500:
        UPSTREAM_ERRORS.labels("server_error").inc()
