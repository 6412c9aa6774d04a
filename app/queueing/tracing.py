"""A job's trace context: captured at enqueue, kept in the outbox, carried by the job, resumed by the worker.

When tracing is on (app/tracing.py calls `enable()`), an enqueue records the current span's W3C
`traceparent` in the job's outbox row (`BackgroundJob.trace_parent`); every push of the row (the
request's, the reconciler's) writes it into the job's hash as the one meta key
`otel_traceparent`; the worker that runs the job reads it back, keeps it only if it matches the
W3C format (anything else is a stranger's string and is ignored), and records the wait in the
queue and the run as spans of that trace: every attempt (a retry, a re-run after a worker's
death) is a run span of its own, with its attempt number, in the same trace.

Off (the default), nothing here imports OpenTelemetry and each hook is one flag test:
tests/e2e/test_tracing.py checks a registration's and an upload's trace across real processes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

META_KEY = "otel_traceparent"
# W3C Trace Context, version 00: trace id and parent id in lower-case hex, not all zeros.
_TRACEPARENT = re.compile(r"00-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-([0-9a-f]{2})")

_enabled = False


def enable() -> None:
    global _enabled
    _enabled = True


def enabled() -> bool:
    return _enabled


def current_traceparent() -> str | None:
    """The current span's context as a `traceparent` string; None when off or outside any span."""
    if not _enabled:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def valid_traceparent(value: Any) -> str | None:
    """`value` if it is a W3C traceparent (version 00), else None: the only thing trusted from a job."""
    if isinstance(value, str) and _TRACEPARENT.fullmatch(value):
        return value
    return None


def _parent_context(traceparent: str | None) -> Any:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    match = _TRACEPARENT.fullmatch(traceparent or "")
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    parent = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(int(flags, 16)))
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer("app.queueing")


# -- the push ---------------------------------------------------------------------------------


def start_push(pushes: Sequence[Any], resent: bool) -> list[Any]:
    """One span per trace among `pushes` (their `traceparent`), for the round trip that pushes them."""
    if not _enabled:
        return []
    from opentelemetry.trace import SpanKind

    spans = []
    for traceparent in dict.fromkeys(push.traceparent for push in pushes if push.traceparent):
        span = _tracer().start_span(
            "queue resend" if resent else "queue push", context=_parent_context(traceparent), kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "rq", "messaging.batch.message_count": len(pushes)},
        )
        spans.append(span)
    return spans


def end_spans(spans: list[Any]) -> None:
    for span in spans:
        span.end()


# -- the run ----------------------------------------------------------------------------------


class JobSpan:
    """The run of one attempt, current while the worker runs it (its logs carry its trace id)."""

    def __init__(self, span: Any, token: Any) -> None:
        self.span = span
        self.token = token


def start_job(job: Any, attempt: int) -> JobSpan | None:
    """The job's wait in its queue (a finished span) and its run (current until `end_job`)."""
    if not _enabled:
        return None
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    parent = _parent_context(valid_traceparent((job.meta or {}).get(META_KEY)))
    attributes = {"messaging.system": "rq", "messaging.destination.name": job.origin or "", "messaging.message.id": job.id,
                  "job.func": job.func_name or "", "job.attempt": attempt, "process.pid": os.getpid()}
    tracer = _tracer()
    enqueued_at = job.enqueued_at
    if attempt == 1 and enqueued_at is not None:
        started = _nanoseconds(datetime.now(UTC))
        waited = tracer.start_span("queue wait", context=parent, kind=SpanKind.CONSUMER, attributes=attributes,
                                   start_time=min(_nanoseconds(enqueued_at), started))
        waited.end(end_time=started)
    span = tracer.start_span(f"job {job.func_name}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes)
    token = otel_context.attach(trace.set_span_in_context(span))
    return JobSpan(span, token)


def end_job(job_span: JobSpan | None, succeeded: bool, flush: bool) -> None:
    """End the run span; `flush` in a work-horse, which leaves by os._exit before any exporter thread runs."""
    if job_span is None:
        return
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    if not succeeded:
        job_span.span.set_status(Status(StatusCode.ERROR))
    job_span.span.end()
    otel_context.detach(job_span.token)
    if flush:
        provider = trace.get_tracer_provider()
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush(2000)


def _nanoseconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000_000)
