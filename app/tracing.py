"""Tracing (OpenTelemetry): on only when an exporter is configured (settings.TRACING_ENABLED).

The standard variables switch it on and configure it: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; OTLP over HTTP/protobuf, what Railway's tracing sets), or
`OTEL_TRACES_EXPORTER=console`; `OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_HEADERS`, the batch
processor's `OTEL_BSP_*` and the sampler's ratio are read by the SDK. `OTEL_SDK_DISABLED=true`
keeps it off.

On, every process (web, workers, scheduler) instruments Django (a span per request, under WSGI
and ASGI), redis-py and psycopg, and the queueing layer carries each job's trace context from
its enqueue to its worker (app/queueing/tracing.py): a registration is one trace from the HTTP
request to the SMTP conversation. Redis commands and SQL outside any request or job (heartbeats,
sweeps, housekeeping) would each be a trace of their own: the sampler drops such orphan client
spans. Off, nothing imports OpenTelemetry: `span()` is a shared no-op context manager.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

_enabled = False


def init_tracing(*, exporter: str = "otlp", sample_ratio: float = 1.0) -> None:
    """Set up the SDK and the instrumentations in this process (app.apps.EgoejoConfig.ready)."""
    global _enabled
    from opentelemetry import trace
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    from app.queueing import tracing as queue_tracing

    if _enabled:
        return
    span_exporter: Any
    if exporter == "console":
        span_exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()  # endpoint, headers, timeout: the OTEL_EXPORTER_OTLP_* variables
    # service.name from OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES), else this default.
    resource = Resource.create({"service.name": "egoejo-backend"}).merge(Resource.create())
    provider = TracerProvider(resource=resource, sampler=_sampler(sample_ratio))
    # A forked work-horse gets the processor's thread back (the SDK's at-fork hook); it flushes
    # before its os._exit (app/queueing/tracing.py:end_job).
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()  # before the handlers load the middleware: inserts its own first
    RedisInstrumentor().instrument()
    PsycopgInstrumentor().instrument(enable_commenter=False)
    queue_tracing.enable()
    _enabled = True
    logger.info("tracing on: %s exporter, sample ratio %s", exporter, sample_ratio)


def enabled() -> bool:
    return _enabled


def _sampler(ratio: float) -> Any:
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, Sampler, SamplingResult, TraceIdRatioBased
    from opentelemetry.trace import SpanKind, get_current_span

    root = ALWAYS_ON if ratio >= 1.0 else TraceIdRatioBased(ratio)

    class NoOrphanClientSpans(Sampler):
        """A root span of kind CLIENT (a Redis command, an SQL statement outside any request or job) is dropped."""

        def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None, attributes: Any = None,
                          links: Any = None, trace_state: Any = None) -> SamplingResult:
            parent = get_current_span(parent_context).get_span_context()
            if not parent.is_valid and kind == SpanKind.CLIENT:
                return SamplingResult(Decision.DROP)
            return root.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

        def get_description(self) -> str:
            return f"NoOrphanClientSpans({root.get_description()})"

    return ParentBased(root=NoOrphanClientSpans())


_NO_SPAN = contextlib.nullcontext()


def span(name: str, attributes: Mapping[str, Any] | None = None) -> contextlib.AbstractContextManager[Any]:
    """A span around a step of a job (`with tracing.span("image.render"):`); nothing when off."""
    if not _enabled:
        return _NO_SPAN
    return _span(name, attributes)


@contextlib.contextmanager
def _span(name: str, attributes: Mapping[str, Any] | None) -> Iterator[Any]:
    from opentelemetry import trace

    with trace.get_tracer("app").start_as_current_span(name, attributes=dict(attributes or {})) as current:
        yield current


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, or None (off, or no span)."""
    if not _enabled:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` to a record logged inside a span (a job's run, a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_ids()
        if ids is not None:
            record.trace_id, record.span_id = ids
        return True


class TextWithTraceFormatter(logging.Formatter):
    """The text format, with ` trace_id=…` appended to a record that has one."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        trace_id = getattr(record, "trace_id", None)
        return f"{text} trace_id={trace_id}" if trace_id else text


def exporter_from(environment: Mapping[str, str], names: Sequence[str] = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) -> str | None:
    """Which exporter the standard variables ask for: "otlp", "console", or None (off)."""
    if environment.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    chosen = environment.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if chosen == "none":
        return None
    if chosen == "console":
        return "console"
    if chosen == "otlp" or any(environment.get(name, "").strip() for name in names):
        return "otlp"
    return None
