"""Error tracking (Sentry): on only when SENTRY_DSN is set (app/settings calls init_error_tracking).

What is reported: unhandled errors of the web (a 500) and a job's *final* failure — the one
after which nobody will retry it (app/queueing/workers.py:classify_failure calls report_job_failure).
What is not: attempts that will be retried (they are logged), log records (no logging
integration events: the worker logs every attempt at WARNING/ERROR), request bodies, cookies,
users' identities, frame-local variables or a job's arguments (the job's id and function only).
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from app.tracing import current_ids

logger = logging.getLogger(__name__)

FLUSH_TIMEOUT_SECONDS = 2.0


def init_error_tracking(
    dsn: str, *, environment: str | None = None, release: str | None = None, transport: Any = None
) -> None:
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        transport=transport,
        # No personal data: no user identity, request bodies or frame-local variables (a job's
        # locals hold addresses); cookies and credential-like headers are scrubbed.
        data_collection={"user_info": False, "http_bodies": [], "stack_frame_variables": False},
        # Only what is listed: no integration switches itself on because a package is installed
        # (sentry's own RQ integration would report every attempt's exception).
        auto_enabling_integrations=False,
        integrations=[DjangoIntegration(), LoggingIntegration(level=logging.INFO, event_level=None)],
        traces_sample_rate=0.0,
        max_request_body_size="never",
    )


def enabled() -> bool:
    return sentry_sdk.get_client().is_active()


def report_job_failure(job: Any, exc_value: BaseException, traceback: TracebackType | None = None) -> None:
    """A job failed for good: one event, tagged with its queue and function, its id as context."""
    if not enabled():
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("queue", job.origin)
        scope.set_tag("job.func", job.func_name)
        scope.set_context("job", {"id": job.id, "queue": job.origin, "func": job.func_name})
        ids = current_ids()  # the job's trace (app/tracing.py), when tracing is on
        if ids is not None:
            # The event joins the job's trace: Sentry reads the trace id from the event's trace context.
            scope.set_tag("trace_id", ids[0])
            scope.set_context("trace", {"trace_id": ids[0], "span_id": ids[1]})
        sentry_sdk.capture_exception((type(exc_value), exc_value, traceback))
    # A forking worker's work-horse ends with os._exit: send now or the event is lost with it.
    sentry_sdk.flush(timeout=FLUSH_TIMEOUT_SECONDS)
