"""One trace per request, across processes: the web (ASGI), the light workers, the images worker
(a forking work-horse per job) and the scheduler export their spans over OTLP/HTTP, the real
exporter, to a collector in this test that keeps them in memory.

A registration is one trace: the HTTP request, the outbox INSERT, the push after the response,
the wait in the queue, the job's run in another process and its SMTP conversation; an upload is
one trace down to the image steps in the work-horse; a dashboard refresh's SQL sits under its
job. Each job's log lines carry the trace id. PostgreSQL is needed (psycopg is instrumented).
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from tests import redis_db
from tests.e2e.databases import private_pg_database
from tests.e2e.processes import PYTHON, ROOT, HttpClient, logs, stack_env
from tests.smtp import SmtpSink, free_port

pytestmark = pytest.mark.e2e


@dataclass
class Span:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)


class Collector:
    """An OTLP/HTTP trace receiver (POST /v1/traces, protobuf) that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.keep(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def keep(self, request: Any) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(Span(
                        resource.get("service.name", "?"), span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                        span.name, {kv.key: _value(kv.value) for kv in span.attributes},
                    ))
        with self.lock:
            self.spans.extend(spans)

    def trace(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def find(self, predicate: Any) -> list[Span]:
        with self.lock:
            return [span for span in self.spans if predicate(span)]

    def stop(self) -> None:
        self.server.shutdown()


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


@pytest.fixture
def database() -> Iterator[str]:
    with private_pg_database("egoejo_trace", "the tracing test") as url:
        yield url


@contextmanager
def processes(env: dict[str, str], commands: dict[str, list[str]], log_dir: Path) -> Iterator[None]:
    log_dir.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    try:
        for service, argv in commands.items():
            with open(log_dir / f"{service}.log", "wb") as log:
                started.append(subprocess.Popen([PYTHON, *argv], cwd=ROOT, env={**env, "OTEL_SERVICE_NAME": service},
                                                stdout=log, stderr=subprocess.STDOUT))
        yield
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(condition: Any, what: str, log_dir: Path, timeout: float = 30, collector: Collector | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    seen = sorted({(s.service, s.name, bool(s.parent_id)) for s in collector.spans}) if collector else ""
    raise AssertionError(f"{what}\nspans: {seen}\n{logs(log_dir)}")


def names(spans: list[Span], service: str) -> set[str]:
    return {span.name for span in spans if span.service == service}


def test_a_registration_and_an_upload_are_each_one_trace_across_processes(
    tmp_path: Path, database: str, redis_db_index: int, redis_conn: redis.Redis
):
    collector = Collector()
    sink = SmtpSink()
    sink.start()
    port = free_port()
    log_dir = tmp_path / "logs"
    env = stack_env(
        tmp_path, redis_db.redis_url(), redis_db_index, DATABASE_URL=database, EMAIL_URL=f"smtp://127.0.0.1:{sink.port}",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.port}", OTEL_BSP_SCHEDULE_DELAY="100", DATABASE_POOL="4",
    )
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=ROOT, env={k: v for k, v in env.items() if not k.startswith("OTEL_")},
                   check=True, capture_output=True, timeout=180)
    commands = {
        "web": ["-m", "gunicorn", "app.asgi:application", "-k", "uvicorn_worker.UvicornWorker", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        "worker-light": ["manage.py", "rqpool", "emails", "metrics", "--workers", "1"],
        "worker-images": ["manage.py", "rqworker", "images"],
        "scheduler": ["manage.py", "rqscheduler", "--interval", "1"],
    }
    try:
        with processes(env, commands, log_dir):
            client = HttpClient(f"http://127.0.0.1:{port}")
            client.wait_until_up("/livez")
            assert client.request("GET", "/api/auth/csrf/")[0] == 200
            status, body = client.request("POST", "/api/auth/register/",
                                          {"username": "tracy", "email": "tracy@example.org", "password": "a-long-pass-phrase-42"})
            assert status == 202, body
            [(_, confirmation_mail)] = sink.wait_for(1, timeout=30)
            welcome = "job app.jobs.emails.send_confirmation_email"  # the registration's mail: its link

            # -- the registration's trace --------------------------------------------------------
            [request] = wait_for(lambda: collector.find(lambda s: s.service == "web" and "register" in s.name and not s.parent_id),
                                 "no span for the registration request", log_dir, collector=collector)
            # The run's span ends after its SMTP conversation's, and may come in a later export batch.
            trace = wait_for(lambda: (t := collector.trace(request.trace_id)) and {"smtp send", welcome} <= names(t, "worker-light") and t,
                             "the registration's trace did not reach the SMTP conversation and the run's end", log_dir)
            web = [span for span in trace if span.service == "web"]
            assert any(span.attributes.get("db.statement", "").startswith("INSERT INTO \"egoejo_backgroundjob\"") for span in web), \
                sorted(span.name for span in web)  # the outbox row, in the request's transaction
            assert "queue push" in names(trace, "web")  # after the response, in the same trace
            light = {span.name: span for span in trace if span.service == "worker-light"}
            assert {"queue wait", welcome, "smtp send"} <= set(light), sorted(light)
            run = light[welcome]
            assert run.attributes["messaging.message.id"] == body["job_id"] and run.attributes["job.attempt"] == 1
            assert light["smtp send"].parent_id == run.span_id  # the SMTP conversation, inside the run
            assert any(span.parent_id == run.span_id and span.name in ("SELECT", "INSERT", "UPDATE") for span in trace)  # its SQL
            # The job's log lines carry the trace id.
            started_line = next(line for line in (log_dir / "worker-light.log").read_text().splitlines()
                                if f"job {body['job_id']} started" in line)
            assert f"trace_id={request.trace_id}" in started_line

            # -- the upload's trace --------------------------------------------------------------
            text = "".join(part.get_content() for part in confirmation_mail.walk() if part.get_content_type() == "text/plain")
            token = re.search(r"/account/confirm/([^/\s\"<]+)/", text)
            assert token, text
            status, _ = client.request("POST", "/api/auth/confirm/", {"token": token.group(1), "password": "a-long-pass-phrase-42"})
            assert status == 200  # confirmed, and logged in
            image = upload_image(client)
            wait_for(lambda: client.request("GET", f"/api/images/{image['id']}/")[1].get("status") == "done", "image not done", log_dir)
            [upload] = wait_for(lambda: collector.find(lambda s: s.service == "web" and "images" in s.name and s.name.startswith("POST")
                                                        and not s.parent_id), "no span for the upload", log_dir)
            steps = {"job app.jobs.images.process_image", "image read", "image render", "image write"}
            trace = wait_for(lambda: (t := collector.trace(upload.trace_id)) and steps <= names(t, "worker-images") and t,
                             "the upload's trace did not reach the image steps in the work-horse", log_dir)
            assert "queue push" in names(trace, "web")

            # -- a dashboard refresh: its SQL under its job ----------------------------------------
            status, impact = client.request("GET", "/api/impact/")
            assert status == 200
            assert impact["refresh_job_id"]  # a new member's dashboard is stale: a refresh was enqueued
            refresh = "job app.jobs.metrics.update_impact_dashboard_metrics"
            [job_span] = wait_for(lambda: collector.find(lambda s: s.name == refresh), "no span for the dashboard refresh", log_dir)
            [impact_request] = collector.find(lambda s: s.span_id == job_span.parent_id)
            assert impact_request.service == "web" and "impact" in impact_request.name
            wait_for(lambda: [s for s in collector.trace(job_span.trace_id) if s.parent_id == job_span.span_id
                              and s.attributes.get("db.statement", "").startswith("SELECT")], "the refresh's SQL is not in its trace", log_dir)
            # Worker housekeeping (heartbeats, sweeps) makes no trace of its own.
            assert not collector.find(lambda s: not s.parent_id and s.service in ("worker-light", "worker-images", "scheduler")
                                      and s.name not in ("queue resend",) and not s.name.startswith(("job ", "queue ")))
    finally:
        sink.stop()
        collector.stop()


def upload_image(client: HttpClient) -> dict[str, Any]:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (20, 120, 200)).save(buffer, "PNG")
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"t.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + buffer.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    token = next(c.value for c in client.cookies if c.name == "csrftoken")
    request = urllib.request.Request(client.base_url + "/api/images/", data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "X-CSRFToken": token, "Accept": "application/json"})
    with client.opener.open(request, timeout=10) as response:
        assert response.status == 202
        return json.loads(response.read())  # type: ignore[no-any-return]
