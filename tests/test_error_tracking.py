"""Error tracking: what reaches Sentry (a job's final failure, a web 500) and what doesn't (an
attempt that will be retried, a 4xx, personal data). Sentry's own client runs for real; only its
transport is swapped for one that keeps the envelopes it would have sent."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django_rq
import pytest
import sentry_sdk
from django.http import HttpRequest
from django.urls import include, path
from sentry_sdk.integrations.rq import RqIntegration
from sentry_sdk.transport import Transport

from app import observability
from app.jobs import emails, images
from tests.smtp import free_port

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[1]


class KeptEnvelopes(Transport):
    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope) -> None:  # type: ignore[no-untyped-def]
        for item in envelope.items:
            if item.type == "event":
                self.events.append(item.payload.json)


def boom(request: HttpRequest):  # type: ignore[no-untyped-def]
    raise RuntimeError("the view broke")


urlpatterns = [path("boom/", boom), path("", include("app.urls"))]


@pytest.fixture
def sent() -> Iterator[list[dict[str, Any]]]:
    transport = KeptEnvelopes()
    observability.init_error_tracking("https://public@sentry.invalid/1", environment="test", transport=transport)
    yield transport.events
    # Off again for the rest of the session — and with no integration at all: a bare init() would
    # switch on every auto-enabling one (RQ's among them writes trace headers into job meta).
    sentry_sdk.init(dsn=None, default_integrations=False, auto_enabling_integrations=False)


def test_a_final_job_failure_is_reported_once_with_its_queue_and_no_arguments(
    sent, run_worker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = images.process_image.delay("uploads/originals/secret-name-missing.jpg").id
    run_worker("images")
    [event] = sent
    assert event["tags"]["queue"] == "images" and event["tags"]["job.func"] == "app.jobs.images.process_image"
    assert event["contexts"]["job"]["id"] == job_id
    assert event["exception"]["values"][-1]["type"] == "PermanentJobError"
    assert "secret-name-missing" not in str(event.get("extra", {})) + str(event["contexts"]["job"])
    frames = [frame for value in event["exception"]["values"] for frame in value["stacktrace"]["frames"]]
    assert frames and not any(frame.get("vars") for frame in frames)  # no locals: they hold arguments


def test_an_attempt_that_will_be_retried_is_not_reported(sent, settings, run_worker, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2  # nothing listens
    with django_capture_on_commit_callbacks(execute=True):
        job_id = emails.send_email.delay("someone@example.org", "Hi", "<p>hi</p>").id
    run_worker("emails")
    job = django_rq.get_queue("emails").fetch_job(job_id)
    assert job.retries_left and job.retries_left > 0  # it failed, transiently, and will be retried
    assert sent == []
    # Sentry's own RQ integration (which would report every attempt) stays off, and leaves jobs alone.
    assert sentry_sdk.get_client().get_integration(RqIntegration) is None
    assert "_sentry_trace_headers" not in job.meta


@pytest.mark.urls(__name__)
def test_a_web_error_is_reported_without_cookies_or_credentials(sent, client):
    client.raise_request_exception = False
    client.cookies["sessionid"] = "s3ssion"
    response = client.get("/boom/", HTTP_AUTHORIZATION="Bearer top-secret")
    assert response.status_code == 500
    [event] = sent
    assert event["exception"]["values"][-1]["value"] == "the view broke"
    request = event["request"]
    assert "s3ssion" not in str(request) and "top-secret" not in str(request)


@pytest.mark.urls(__name__)
def test_client_errors_are_not_reported(sent, client):
    assert client.get("/no-such-page/").status_code == 404
    assert client.post("/api/auth/login/", data="{}", content_type="application/json").status_code == 400
    assert sent == []


def _active_after_settings(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SENTRY_"))}
    env.update(DJANGO_SETTINGS_MODULE="app.settings", DJANGO_DEBUG="1", **extra)
    code = "import django; django.setup(); import sentry_sdk; print(sentry_sdk.get_client().is_active())"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_error_tracking_is_on_only_with_a_dsn():
    assert _active_after_settings({}) == "False"
    assert _active_after_settings({"SENTRY_DSN": "https://public@sentry.invalid/1"}) == "True"


def test_with_tracing_on_a_final_job_failure_joins_its_trace(sent, monkeypatch):
    """The event carries the trace id of the job's run span (app/tracing.py): Sentry files it
    under that trace, and the job's log lines carry the same id."""
    from types import SimpleNamespace

    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from app import tracing

    monkeypatch.setattr(tracing, "_enabled", True)
    run = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=False, trace_flags=TraceFlags(1))
    job = SimpleNamespace(id="j1", origin="emails", func_name="app.jobs.emails.send_email")
    with trace.use_span(NonRecordingSpan(run)):
        try:
            raise RuntimeError("SMTP said no")
        except RuntimeError as exc:
            observability.report_job_failure(job, exc, exc.__traceback__)
    [event] = sent
    assert event["contexts"]["trace"]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert event["contexts"]["trace"]["span_id"] == "00f067aa0ba902b7"
    assert event["tags"]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
