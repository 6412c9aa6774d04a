"""A job's trace context (app/queueing/tracing.py): recorded with its outbox row, written by every
push as the one meta key `otel_traceparent` (RQ's path and the fast path alike), trusted by the
worker only in the W3C format; with tracing off nothing is recorded and no key is written."""

from __future__ import annotations

import uuid
from datetime import timedelta

import django_rq
import pytest
from django.db import transaction
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from app.jobs import emails
from app.queueing import catalog as registry
from app.queueing import dispatch, tracing
from app.queueing.jobclass import refusal_of
from app.queueing.models import BackgroundJob
from app.queueing.outbox import reconcile

pytestmark = pytest.mark.django_db(transaction=True)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def traced(monkeypatch):  # type: ignore[no-untyped-def]
    """Tracing on as far as the queueing layer is concerned, inside a span with TRACEPARENT's context."""
    monkeypatch.setattr(tracing, "_enabled", True)
    context = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=False, trace_flags=TraceFlags(1))
    with trace.use_span(NonRecordingSpan(context)):
        yield


@pytest.mark.parametrize("fast", [True, False])
def test_the_enqueuers_context_is_recorded_and_pushed_as_one_meta_key(traced, settings, fast):
    settings.QUEUEING_FAST_PATHS = fast
    with transaction.atomic():
        job_id = emails.send_welcome_email.delay(7).id
    assert BackgroundJob.objects.get(pk=job_id).trace_parent == TRACEPARENT
    job = django_rq.get_queue("emails").fetch_job(job_id)
    signature = job.meta.pop("sig")  # the layer's signature covers the trace context too (signing.py)
    assert job.meta == {"max_retries": emails.send_welcome_email.spec.max_retries, "outbox": 1, "otel_traceparent": TRACEPARENT}
    job.meta["sig"] = signature
    assert refusal_of(job) is None


def test_the_reconciler_resends_a_lost_job_with_its_context(traced, redis_conn):
    with transaction.atomic():
        job_id = emails.send_welcome_email.delay(8).id
    redis_conn.flushdb()  # Redis lost it
    assert reconcile(redis_conn, min_age=timedelta(0), missing_after=0)["resent"] == 1
    assert django_rq.get_queue("emails").fetch_job(job_id).meta["otel_traceparent"] == TRACEPARENT


def test_with_tracing_off_nothing_is_recorded_and_no_key_is_written():
    assert not tracing.enabled()
    with transaction.atomic():
        job_id = emails.send_welcome_email.delay(9).id
    assert BackgroundJob.objects.get(pk=job_id).trace_parent is None
    assert "otel_traceparent" not in django_rq.get_queue("emails").fetch_job(job_id).meta
    # The same job pushed from a bare Push: no context, no key.
    push = dispatch.Push(registry.spec_for(emails.send_welcome_email), uuid.uuid4().hex, [10], {}, None)
    dispatch.send([push])
    assert "otel_traceparent" not in django_rq.get_queue("emails").fetch_job(push.job_id).meta


@pytest.mark.parametrize("value", [
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  # trailing junk
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper case
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # unknown version
    "../../etc/passwd", "", None, 42, ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
])
def test_a_worker_trusts_nothing_but_a_w3c_traceparent(value):
    assert tracing.valid_traceparent(value) is None


def test_a_w3c_traceparent_is_kept():
    assert tracing.valid_traceparent(TRACEPARENT) == TRACEPARENT
