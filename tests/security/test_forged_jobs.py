"""A job runs only if the queueing layer made it: forged hashes choose no effect.

Whoever can write to Redis can write a job hash that names a declared function with arguments
of their choosing, or add a field that makes RQ act beyond the function (a callback, a webhook,
a dependency, a repeat, a class name in meta). Each such hash is forged here, by hand or with
RQ's own classes, and run by both worker kinds: it fails with its reason, is counted for the
alert, and has no effect (no mail, no HTTP request, no file, no import, no row).
"""

from __future__ import annotations

import http.server
import json
import threading
import zlib
from collections.abc import Iterator
from datetime import datetime
from io import StringIO
from pathlib import Path
from typing import Any

import django_rq
import pytest
from django.core.management import call_command
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from app.models import ImpactDashboard, SentMail
from app.queueing import catalog as registry
from app.queueing import keys
from app.queueing.models import BackgroundJob
from app.queueing.scheduling import ProjectScheduler, ensure_schedules
from app.queueing.workers import ForkingWorker, InProcessWorker
from tests.factories import jpeg_bytes, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=[InProcessWorker, ForkingWorker], ids=["in-process", "forking"])
def worker_class(request):  # type: ignore[no-untyped-def]
    return request.param


def work(worker_class, connection, *names: str) -> None:  # type: ignore[no-untyped-def]
    queues = [django_rq.get_queue(name) for name in names or ("emails", "images", "metrics")]
    worker_class(queues, connection=connection).work(burst=True, with_scheduler=False)


def forge(connection, path: str, *args: Any, **options: Any) -> Job:  # type: ignore[no-untyped-def]
    """A job written with RQ's own Queue: what anyone holding Redis credentials can do."""
    queue = registry.spec_for(path).queue_name
    return Queue(queue, connection=connection, serializer=JSONSerializer).enqueue_call(path, args=list(args), **options)


def refused_with(connection, job_id: str) -> str:  # type: ignore[no-untyped-def]
    job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FAILED
    return job.latest_result().exc_string


@pytest.fixture
def member():  # type: ignore[no-untyped-def]
    return make_user("victim", email="victim@example.org")


def _forged_calls(member, tmp_path: Path) -> dict[str, tuple[Any, ...]]:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(jpeg_bytes((64, 48)))
    return {
        "app.jobs.emails.send_email": ("someone@outside.example", "Reset your password", "<a href='https://evil.example'>here</a>"),
        "app.jobs.emails.send_welcome_email": (member.pk,),
        "app.jobs.emails.send_account_exists_email": (member.pk,),
        "app.jobs.emails.send_username_taken_email": ("someone@outside.example", "fr"),
        "app.jobs.emails.send_bulk_email": ("announcement", [member.pk]),
        "app.jobs.emails.send_confirmation_email": (member.pk,),
        "app.jobs.emails.send_password_reset_email": (member.email,),
        "app.jobs.images.process_image": (str(outside),),
        "app.jobs.metrics.update_impact_dashboard_metrics": (member.pk,),
        "app.jobs.metrics.refresh_all_dashboards": (),
    }


def test_every_declared_job_of_the_domain_has_a_forgery_below(member, tmp_path):
    domain = {path for path in registry.jobs() if path.startswith("app.")}
    assert domain == set(_forged_calls(member, tmp_path))


def test_a_forged_call_of_each_declared_job_has_no_effect(worker_class, redis_conn, smtp_sink, member, tmp_path, media_root):
    calls = _forged_calls(member, tmp_path)
    files_before = sorted(tmp_path.rglob("*"))
    jobs = {path: forge(redis_conn, path, *args) for path, args in calls.items()}
    work(worker_class, redis_conn)
    for path, job in jobs.items():
        assert "ForgedJobError: it carries no signature of the queueing layer" in refused_with(redis_conn, job.id), path
    assert smtp_sink.messages == [] and SentMail.objects.count() == 0
    assert ImpactDashboard.objects.count() == 0
    assert sorted(tmp_path.rglob("*")) == files_before  # no rendition next to the image, nothing in media
    assert not any(media_root.rglob("*"))
    assert int(redis_conn.hget(keys.REFUSED, "emails")) == 7
    assert int(redis_conn.hget(keys.REFUSED, "images")) == 1 and int(redis_conn.hget(keys.REFUSED, "metrics")) == 2


def test_the_signature_of_another_job_or_changed_arguments_is_refused(worker_class, redis_conn, smtp_sink, member, django_capture_on_commit_callbacks):
    from app.jobs.emails import send_email

    with django_capture_on_commit_callbacks(execute=True):
        genuine = send_email.delay("member@example.org", "Hello", "<p>hi</p>")
    signed = Job.fetch(genuine.id, connection=redis_conn, serializer=JSONSerializer)
    # The genuine job's meta, signature included, on a forged job to an outside address.
    copied = forge(redis_conn, "app.jobs.emails.send_email", "someone@outside.example", "Hello", "<p>hi</p>", meta=signed.meta)
    # The genuine job itself, its recipient changed in place.
    data = json.loads(Job.fetch(genuine.id, connection=redis_conn, serializer=JSONSerializer).data)
    data[2][0] = "someone@outside.example"
    redis_conn.hset(signed.key, "data", zlib.compress(json.dumps(data).encode()))
    work(worker_class, redis_conn, "emails")
    assert "signature does not match" in refused_with(redis_conn, copied.id)
    assert "signature does not match" in refused_with(redis_conn, genuine.id)
    assert smtp_sink.messages == []
    assert BackgroundJob.objects.get(pk=genuine.id).state == BackgroundJob.State.FAILED  # its row is closed, not re-sent


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        type(self).hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_sink() -> Iterator[str]:
    _Recorder.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


# Each field, added to a job the layer made and signed, that would make a worker act beyond it.
EFFECT_FIELDS = {
    "webhooks": lambda url: json.dumps([{"url": url, "events": ["finished", "failed"], "headers": {}, "timeout": 2}]),
    "success_callback_name": lambda url: "tests.fixtures.say_hello",
    "failure_callback_name": lambda url: "os.system",
    "stopped_callback_name": lambda url: "subprocess.run",
    "dependency_ids": lambda url: json.dumps(["x"]),
    "repeats_left": lambda url: "5",
    "repeat_intervals": lambda url: "[1]",
    "rate_limit_key": lambda url: "rl",
    "ttl": lambda url: "1",
    "group_id": lambda url: "g",
    "a_field_rq_adds_tomorrow": lambda url: "1",
}


@pytest.mark.parametrize("field", sorted(EFFECT_FIELDS))
def test_a_field_the_layer_never_writes_is_refused(worker_class, redis_conn, smtp_sink, http_sink, field, django_capture_on_commit_callbacks):
    from app.jobs.emails import send_email

    with django_capture_on_commit_callbacks(execute=True):
        job = send_email.delay("member@example.org", "Hello", "<p>hi</p>")
    redis_conn.hset(f"rq:job:{job.id}", field, EFFECT_FIELDS[field](http_sink))
    work(worker_class, redis_conn, "emails")
    reason = refused_with(redis_conn, job.id)
    if field.endswith("_callback_name"):  # refused by name first: the layer declares no callback
        assert f"UndeclaredJobError: callback {EFFECT_FIELDS[field](http_sink)!r} is not declared" in reason
    else:
        assert "ForgedJobError" in reason and field in reason
    assert smtp_sink.messages == [] and _Recorder.hits == []


@pytest.mark.parametrize("meta", [{"queue_class_name": "os.system"}, {"interval": 1, "repeat": 3}, {"anything": 1}])
def test_a_meta_key_the_layer_never_writes_is_refused(worker_class, redis_conn, smtp_sink, meta, django_capture_on_commit_callbacks):
    from app.jobs.emails import send_email

    with django_capture_on_commit_callbacks(execute=True):
        job = send_email.delay("member@example.org", "Hello", "<p>hi</p>")
    stored = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer)
    stored.meta.update(meta)
    stored.save_meta()
    work(worker_class, redis_conn, "emails")
    assert "meta keys the layer never writes" in refused_with(redis_conn, job.id)
    assert smtp_sink.messages == []


def test_retries_beyond_the_declaration_are_refused(redis_conn, smtp_sink, django_capture_on_commit_callbacks):
    from app.jobs.emails import send_email

    with django_capture_on_commit_callbacks(execute=True):
        job = send_email.delay("member@example.org", "Hello", "<p>hi</p>")
    redis_conn.hset(f"rq:job:{job.id}", "retries_left", 1000)
    work(InProcessWorker, redis_conn, "emails")
    assert "more retries left than its declaration allows" in refused_with(redis_conn, job.id)


def test_an_old_key_still_verifies_during_a_rotation_and_not_after(redis_conn, smtp_sink, settings, django_capture_on_commit_callbacks):
    from app.jobs.emails import send_email

    old, new = settings.QUEUEING_SIGNING_KEYS[0], "a-new-signing-key-0123456789-abcdefghijklmnop"
    with django_capture_on_commit_callbacks(execute=True):
        before = send_email.delay("before@example.org", "Hello", "<p>hi</p>")  # signed with the old key
        stale = send_email.delay("stale@example.org", "Hello", "<p>hi</p>")  # likewise, run after the old key is gone
    redis_conn.lrem("rq:queue:emails", 0, stale.id)
    settings.QUEUEING_SIGNING_KEYS = [new, old]  # the rotation: the new key signs, both verify
    with django_capture_on_commit_callbacks(execute=True):
        after = send_email.delay("after@example.org", "Hello", "<p>hi</p>")
    work(InProcessWorker, redis_conn, "emails")
    smtp_sink.wait_for(2)
    assert sorted(smtp_sink.recipients()) == ["after@example.org", "before@example.org"]
    assert before.id != after.id
    settings.QUEUEING_SIGNING_KEYS = [new]  # the old key dropped
    redis_conn.rpush("rq:queue:emails", stale.id)
    work(InProcessWorker, redis_conn, "emails")
    assert "signature does not match" in refused_with(redis_conn, stale.id)
    assert len(smtp_sink.messages) == 2


def test_a_forged_schedule_never_reaches_a_queue_and_the_declared_one_comes_back(redis_conn, smtp_sink, member):
    from rq_scheduler import Scheduler

    from app.queueing.jobclass import QueueingJob

    scheduler = ProjectScheduler(queue_name="metrics", connection=redis_conn)
    ensure_schedules(scheduler)
    declared = {job.id: job for job in scheduler.get_jobs()}
    assert declared  # refresh_all_dashboards, every 15 minutes
    schedule_id = next(iter(declared))
    # Its arguments changed in Redis, and a forged schedule beside it, both due now.
    redis_conn.hset(f"rq:job:{schedule_id}", "description", "changed")
    forged = Scheduler(queue_name="emails", connection=redis_conn, job_class=QueueingJob).enqueue_at(
        datetime(2000, 1, 1), "app.jobs.emails.send_email", "someone@outside.example", "Hi", "<p>x</p>"
    )
    redis_conn.zadd("rq:scheduler:scheduled_jobs", {schedule_id: 0})
    scheduler.enqueue_jobs()
    assert django_rq.get_queue("emails").count == 0
    assert "ForgedJobError" in refused_with(redis_conn, forged.id)
    # The changed schedule was put back as declared, and signed again.
    again = QueueingJob.fetch(schedule_id, connection=redis_conn)
    assert again.description != "changed"
    from app.queueing.jobclass import refusal_of

    assert refusal_of(again) is None
    work(InProcessWorker, redis_conn)
    assert smtp_sink.messages == []


def test_refusals_are_on_metrics_for_the_alert(client, redis_conn, settings, member, tmp_path):
    settings.METRICS_TOKEN = "metrics-token-0123456789abcdef"
    forge(redis_conn, "app.jobs.emails.send_welcome_email", member.pk)
    work(InProcessWorker, redis_conn, "emails")
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token-0123456789abcdef").content.decode()
    assert 'egoejo_jobs_refused_total{queue="emails"} 1.0' in body
    out = StringIO()
    call_command("failedjobs", "--queue", "emails", stdout=out)
    assert "ForgedJobError" in out.getvalue()


def test_jobs_the_layer_makes_run_on_both_worker_kinds(worker_class, redis_conn, smtp_sink, django_capture_on_commit_callbacks):
    """The other side: nothing above is refused because every job is."""
    from app.jobs.emails import send_email

    with django_capture_on_commit_callbacks(execute=True):
        send_email.delay("member@example.org", "Hello", "<p>hi</p>")
        send_email.delay_many([("a@example.org", "Hi", "<p>a</p>"), ("b@example.org", "Hi", "<p>b</p>")])
    work(worker_class, redis_conn, "emails")
    assert len(smtp_sink.wait_for(3)) == 3
    assert redis_conn.hget(keys.REFUSED, "emails") is None


def test_a_job_pushed_before_signing_runs_only_as_its_pending_row_says(redis_conn, smtp_sink):
    """Jobs queued across the upgrade carry no signature: each runs if a pending outbox row holds
    exactly its call, and is refused otherwise."""
    for job_id, to in (("legacy" + "0" * 26, "member@example.org"), ("legacy" + "1" * 26, "someone@outside.example")):
        BackgroundJob.objects.create(id=job_id, queue="emails", func="app.jobs.emails.send_email", args=["member@example.org", "Hi", "<p>x</p>"])
        forge(redis_conn, "app.jobs.emails.send_email", to, "Hi", "<p>x</p>", job_id=job_id, meta={"max_retries": 5, "outbox": 1})
    work(InProcessWorker, redis_conn, "emails")
    assert smtp_sink.recipients() == ["member@example.org"]
    assert "no signature" in refused_with(redis_conn, "legacy" + "1" * 26)
    assert BackgroundJob.objects.get(pk="legacy" + "0" * 26).state == BackgroundJob.State.FINISHED
