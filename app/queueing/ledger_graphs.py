"""Per-queue graphs of the ledger: throughput, failures, retries and wait, last hour and last day.

One aggregate query per window over the rows that ended in it (read from the covering index
ledger_ended_idx, models.BackgroundJob.Meta), bucketed by minute (hour window) or hour (day window):

- throughput: rows that ended finished; failures: rows that ended failed;
- retries: the attempts beyond the first of the rows that ended (sum of attempts - 1);
- wait: the 95th percentile of started_at - coalesce(due_at, created_at) of the rows that ended in
  the bucket, in seconds (PostgreSQL's percentile_cont; elsewhere computed from the rows).

Drawn as inline SVG on the server: no script, no library (tests/test_task_browser.py checks the
numbers on known rows, tests/browser/test_task_browser.py the page in Chromium).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import Coalesce, Trunc
from django.utils import timezone
from django.utils.html import escape

from .models import BackgroundJob

State = BackgroundJob.State
METRICS = ("throughput", "failures", "retries", "wait_p95")
LABELS = {"throughput": "finished", "failures": "failed", "retries": "retries", "wait_p95": "wait p95 (s)"}


@dataclass(frozen=True)
class Window:
    name: str
    step: timedelta
    buckets: int
    kind: str  # Trunc's kind


WINDOWS = {
    "hour": Window("last hour, per minute", timedelta(minutes=1), 60, "minute"),
    "day": Window("last day, per hour", timedelta(hours=1), 24, "hour"),
}


@dataclass
class Series:
    start: datetime
    step: timedelta
    values: dict[str, list[float]] = field(default_factory=dict)


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate (intervals allowed): the `fraction` percentile."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


def _wait() -> Any:
    return ExpressionWrapper(F("started_at") - Coalesce("due_at", "created_at"), output_field=DurationField())


def _floor(moment: datetime, window: Window) -> datetime:
    moment = moment.replace(second=0, microsecond=0)
    return moment.replace(minute=0) if window.kind == "hour" else moment


def series(window_name: str, now: datetime | None = None) -> dict[str, Series]:
    """{queue: Series} for the window ending now; every queue with a row ended in it, or declared."""
    from . import catalog

    window = WINDOWS[window_name]
    end = _floor(now or timezone.now(), window) + window.step
    start = end - window.step * window.buckets
    ended = BackgroundJob.objects.exclude(state=State.PENDING).filter(ended_at__gte=start, ended_at__lt=end)
    bucketed = ended.annotate(bucket=Trunc("ended_at", window.kind)).values("queue", "bucket")
    aggregates: dict[str, Any] = {
        "throughput": Count("state", filter=Q(state=State.FINISHED)),  # columns of the index: an index-only scan
        "failures": Count("state", filter=Q(state=State.FAILED)),
        "retries": Sum(F("attempts") - 1, filter=Q(attempts__gt=1)),
    }
    percentile_in_sql = connection.vendor == "postgresql"
    if percentile_in_sql:
        aggregates["wait_p95"] = PercentileCont(_wait(), 0.95, output_field=DurationField())
    out = {name: _empty(start, window) for name in sorted(catalog.queues())}
    for row in bucketed.annotate(**aggregates).order_by():
        index = _index(row["bucket"], start, window)
        if index is None:
            continue
        values = out.setdefault(row["queue"], _empty(start, window)).values
        for metric in ("throughput", "failures", "retries"):
            values[metric][index] = float(row[metric] or 0)
        if percentile_in_sql and row["wait_p95"] is not None:
            values["wait_p95"][index] = row["wait_p95"].total_seconds()
    if not percentile_in_sql:  # SQLite (development): the waits, then the percentile here
        waits: dict[tuple[str, int], list[float]] = {}
        rows = ended.filter(started_at__isnull=False).annotate(bucket=Trunc("ended_at", window.kind), wait=_wait())
        for queue, bucket, wait in rows.values_list("queue", "bucket", "wait"):
            index = _index(bucket, start, window)
            if index is not None and wait is not None:
                waits.setdefault((queue, index), []).append(wait.total_seconds())
        for (queue, index), values_of in waits.items():
            out.setdefault(queue, _empty(start, window)).values["wait_p95"][index] = percentile(values_of, 0.95)
    return out


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _empty(start: datetime, window: Window) -> Series:
    return Series(start, window.step, {metric: [0.0] * window.buckets for metric in METRICS})


def _index(bucket: datetime | None, start: datetime, window: Window) -> int | None:
    if bucket is None:
        return None
    index = int((bucket - start) / window.step)
    return index if 0 <= index < window.buckets else None


def svg_bars(values: list[float], start: datetime, step: timedelta, label: str, width: int = 300, height: int = 64) -> str:
    """One metric as an SVG bar chart; each bar's <title> gives its bucket and value. Escaped text only."""
    top = max(values) if values and max(values) > 0 else 1.0
    bar = width / max(len(values), 1)
    fmt = "%H:%M"
    parts = [
        f'<svg class="ledger-graph" role="img" width="{width}" height="{height + 16}" viewBox="0 0 {width} {height + 16}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>',
        f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" stroke="#999" stroke-width="1"/>',
    ]
    for i, value in enumerate(values):
        h = 0.0 if value <= 0 else max(1.0, value / top * (height - 2))
        at = start + step * i
        parts.append(
            f'<rect x="{i * bar:.2f}" y="{height - h:.2f}" width="{max(bar - 1, 0.5):.2f}" height="{h:.2f}" fill="#417690">'
            f"<title>{escape(at.strftime(fmt))}: {escape(_number(value))}</title></rect>"
        )
    parts.append(f'<text x="0" y="{height + 13}" font-size="11" fill="#666">{escape(start.strftime(fmt))}</text>')
    parts.append(f'<text x="{width}" y="{height + 13}" font-size="11" fill="#666" text-anchor="end">max {escape(_number(max(values) if values else 0))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def graphs(now: datetime | None = None) -> list[dict[str, Any]]:
    """The graphs page's content: per window, per queue, per metric its SVG and its total or max."""
    from django.utils.safestring import mark_safe

    pages = []
    for key, window in WINDOWS.items():
        queues = []
        for queue, data in series(key, now).items():
            charts = []
            for metric in METRICS:
                values = data.values[metric]
                summary = f"max {_number(max(values))}" if metric == "wait_p95" else f"total {_number(sum(values))}"
                svg = svg_bars(values, data.start, data.step, f"{queue}: {LABELS[metric]}, {window.name}")
                charts.append({"metric": metric, "label": LABELS[metric], "summary": summary, "svg": mark_safe(svg)})  # noqa: S308 (escaped above)
            queues.append({"queue": queue, "charts": charts})
        pages.append({"key": key, "name": window.name, "queues": queues})
    return pages
