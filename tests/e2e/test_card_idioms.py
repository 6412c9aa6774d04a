"""The design card's idioms against the running processes (the Procfile's light pool and forking
images worker, and the scheduler): `django_rq.enqueue(...)` and `.delay(...)` from a Django shell
each deliver exactly one mail; a job written into Redis by hand calling os.system is refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from tests import redis_db
from tests.e2e.processes import logs, manage, running, stack_env
from tests.settle import outbox_pending, settle
from tests.smtp import SmtpSink

pytestmark = pytest.mark.e2e

SHELL = """
import django_rq
from django.contrib.auth import get_user_model
from app.jobs.emails import send_welcome_email
user = get_user_model().objects.create_user("{name}", "{name}@example.org", "a-long-pass-phrase-42")
job = {call}
print(job.id)
"""


def test_card_idioms_deliver_once_and_a_hand_written_job_is_refused(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis):
    sink = SmtpSink()
    sink.start()
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index, EMAIL_URL=f"smtp://127.0.0.1:{sink.port}")
    manage(env, "migrate", "--noinput")
    marker = tmp_path / "pwned"
    log_dir = tmp_path / "logs"
    try:
        with running(
            env,
            ["manage.py", "rqpool", "emails", "metrics", "--workers", "2"],
            ["manage.py", "rqworker", "images", "--with-scheduler"],
            ["manage.py", "rqscheduler", "--interval", "1"],
            log_dir=log_dir,
        ):
            ids = []
            for name, call in (("ana", "django_rq.enqueue(send_welcome_email, user.pk)"), ("bea", "send_welcome_email.delay(user.pk)")):
                out = manage(env, "shell", "-c", SHELL.format(name=name, call=call)).stdout.split()
                ids.append(out[-1])
            hostile = [
                Queue(name, connection=redis_conn, serializer=JSONSerializer).enqueue_call("os.system", args=[f"touch {marker}"])
                for name in ("emails", "images")
            ]
            try:
                delivered = sink.wait_for(2, timeout=30)
            except AssertionError:
                raise AssertionError(logs(log_dir)) from None
            assert sorted(r for recipients, _ in delivered for r in recipients) == ["ana@example.org", "bea@example.org"]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                statuses = [Job.fetch(j.id, connection=redis_conn, serializer=JSONSerializer).get_status() for j in hostile]
                if all(status == JobStatus.FAILED for status in statuses):
                    break
                time.sleep(0.2)
            assert statuses == [JobStatus.FAILED, JobStatus.FAILED], logs(log_dir)
            assert all("not a declared job" in Job.fetch(j.id, connection=redis_conn, serializer=JSONSerializer).latest_result().exc_string for j in hostile)
            # Nothing twice: counted once the outbox, queues and registries are empty through a
            # full reconciler cycle (tests/settle.py), not after a fixed 2 s.
            settle(redis_conn, outbox_pending(env["DATABASE_URL"]), describe=lambda: logs(log_dir))
            assert len(sink.messages) == 2 and not marker.exists()
            for job_id in ids:
                assert Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer).get_status() == JobStatus.FINISHED
    finally:
        sink.stop()
