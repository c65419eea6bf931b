"""The dashboard's chart as the marks of a server-rendered SVG (templates/usage/_chart.html): one
stacked bar per day (or hour) of the period, one colour per model. No JavaScript library: the bars
are `<rect>`s in a viewBox stretched to the page's width, and every text (axis, legend) is HTML
beside it, so it stays legible at phone width rather than shrinking with the drawing."""

from __future__ import annotations

import datetime as dt

from django.utils.html import escape
from django.utils.safestring import SafeString

from core import when

from .selectors import Series, dollars_of

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948")
OTHER_COLOUR = "#9d9d9d"
MAX_MODELS = len(PALETTE)  # more models than colours: the smallest are one "Other models" layer
HEIGHT = 100  # viewBox units; the drawing is stretched to the chart's CSS height
SLOT = 10  # viewBox units per bar


def format_value(value: int, metric: str) -> str:
    if metric == "cost":
        # Under a cent, two decimals made both axis lines of a quiet key's chart read $0.00.
        places = 4 if 0 < value < 10_000 else 2
        return f"${dollars_of(value):,.{places}f}"
    return f"{value:,}"


def _bucket_label(bucket, hourly: bool, zone) -> str:
    if hourly:
        moment = bucket.astimezone(zone)
        return f"{moment:%-d %b %H:%M}"
    return f"{bucket:%-d %b}"


def build(series: Series, metric: str, zone: dt.tzinfo) -> dict:
    models = series.models[:MAX_MODELS]
    layers = [(m, PALETTE[i], series.values[m]) for i, m in enumerate(models)]
    rest = series.models[MAX_MODELS:]
    if rest:
        other = [sum(series.values[m][i] for m in rest) for i in range(len(series.buckets))]
        layers.append((f"{len(rest)} other models", OTHER_COLOUR, other))
    peak = series.peak
    scale = HEIGHT / peak if peak else 0
    gap = 0.15 * SLOT if len(series.buckets) <= 60 else 0.05 * SLOT
    # The bars as markup, written here rather than by a template loop: a period of 13 months has
    # ~1,200 segments, and the template engine spent ~30 ms of CPU on them (bench_dashboard).
    marks = []
    width = f"{SLOT - gap:.3f}"
    for i, bucket in enumerate(series.buckets):
        label = _bucket_label(bucket, series.hourly, zone)
        x = f"{i * SLOT + gap / 2:.3f}"
        top = float(HEIGHT)
        marks.append("<g>")
        for name, colour, values in layers:
            value = values[i]
            if not value:
                continue
            height = value * scale
            top -= height
            title = escape(f"{label} · {name}: {format_value(value, metric)}")
            marks.append(
                f'<rect x="{x}" y="{top:.3f}" width="{width}" height="{height:.3f}" '
                f'fill="{colour}"><title>{title}</title></rect>'
            )
        marks.append("</g>")
    n = len(series.buckets)
    ticks = []
    if n:
        picks = sorted({0, n // 2, n - 1}) if n > 2 else list(range(n))
        ticks = [_bucket_label(series.buckets[i], series.hourly, zone) for i in picks]
    return {
        "marks": SafeString("".join(marks)),  # every text in it escaped above
        "width": max(n, 1) * SLOT,
        "height": HEIGHT,
        "legend": [
            {"name": name, "colour": colour, "total": format_value(sum(values), metric)}
            for name, colour, values in layers
        ],
        "peak": format_value(peak, metric),
        "half": format_value(peak // 2, metric),
        "ticks": ticks,
        "empty": peak == 0,
        "by": "hour" if series.hourly else "day",
        "zone": when.zone_abbreviation(dt.datetime.now(zone)) if series.hourly else "",
    }
