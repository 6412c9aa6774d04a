"""The job ledger (issue #30): every job's outbox row is its durable history, written by the
worker with each retry and with the end, one UPDATE each, and numbered the way the logs number
attempts. Real Redis, real workers (in-process, and forking for a work-horse's death)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import django_rq
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rq.job import JobStatus

from app.queueing import outbox, recovery
from app.queueing.jobclass import QueueingJob
from app.queueing.models import BackgroundJob
from tests import fixtures
from tests.factories import make_user
from tests.test_tasks_api import fire_due_retries

pytestmark = pytest.mark.django_db

HISTORY_KEYS = {"n", "started_at", "ended_at", "duration", "worker", "host", "pid", "outcome", "error"}


def row(job_id: str) -> BackgroundJob:
    return BackgroundJob.objects.get(pk=job_id)


def ledger_updates(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE") and "egoejo_backgroundjob" in q["sql"]]


def test_two_transient_failures_then_a_success_are_three_attempts_in_the_ledger(tmp_path, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = fixtures.fail_until_attempt.delay(str(tmp_path / "runs"), 3).id
    assert (row(job_id).attempts, row(job_id).max_attempts, row(job_id).history) == (0, 3, None)  # recorded at enqueue
    before = datetime.now(UTC)
    with CaptureQueriesContext(connection) as first_run:
        run_worker("metrics")
    waiting = row(job_id)
    assert len(ledger_updates(first_run)) == 1  # the retry: one UPDATE, nothing written at the start
    assert (waiting.state, waiting.attempts, waiting.last_error) == ("pending", 1, "TransientJobError: attempt 1")
    # Retries(2, base=30): the first retry waits 30 s ± 25 %.
    assert waiting.next_retry_at is not None and before + timedelta(seconds=21) <= waiting.next_retry_at <= datetime.now(UTC) + timedelta(seconds=39)
    [entry] = waiting.history
    assert set(entry) == HISTORY_KEYS and (entry["n"], entry["outcome"], entry["error"]) == (1, "retried", "TransientJobError: attempt 1")

    for _ in range(2):
        fire_due_retries()
        with CaptureQueriesContext(connection) as run:
            run_worker("metrics")
        assert len(ledger_updates(run)) == 1  # a retry's ledger, then the success's end: one UPDATE each
    done = row(job_id)
    assert (done.state, done.attempts, done.next_retry_at, done.last_error) == ("finished", 3, None, "TransientJobError: attempt 2")
    assert [e["n"] for e in done.history] == [1, 2, 3]
    assert [e["outcome"] for e in done.history] == ["retried", "retried", "succeeded"]
    for entry in done.history:
        assert set(entry) == HISTORY_KEYS
        assert entry["worker"] and entry["host"] and isinstance(entry["pid"], int) and entry["duration"] >= 0
        assert datetime.fromisoformat(entry["ended_at"]) >= datetime.fromisoformat(entry["started_at"])
    assert done.started_at == datetime.fromisoformat(done.history[0]["started_at"])  # the first attempt's start


def test_a_permanent_failure_is_one_failed_entry_with_its_reason(run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = fixtures.fail_permanently.delay("no such row").id
    run_worker("metrics")
    failed = row(job_id)
    assert (failed.state, failed.attempts, failed.max_attempts, failed.next_retry_at) == ("failed", 1, 4, None)
    assert failed.last_error == "PermanentJobError: no such row" and "no such row" in failed.failure_reason
    [entry] = failed.history
    assert (entry["n"], entry["outcome"], entry["error"], entry["pid"]) == (1, "failed", "PermanentJobError: no such row", os.getpid())


def test_an_attempt_whose_worker_died_is_abandoned_in_the_ledger(redis_conn, run_worker, caplog, django_capture_on_commit_callbacks):
    """The sweep takes the job of a dead worker back: that attempt is in the ledger as abandoned,
    and the next run is attempt 2 in the logs and the ledger."""
    caplog.set_level(logging.INFO, logger="app.queueing.workers")
    with django_capture_on_commit_callbacks(execute=True):
        job_id = fixtures.say_hello.delay("x").id
    queue = django_rq.get_queue("metrics")
    redis_conn.lrem(queue.key, 0, job_id)  # a worker took it, started it, and died
    job = QueueingJob.fetch(job_id, connection=redis_conn)
    job.set_status(JobStatus.STARTED)
    job.worker_name, job.started_at = "dead-worker", datetime.now(UTC) - timedelta(seconds=3)
    job.save()
    redis_conn.zadd(f"rq:wip:{queue.name}", {f"{job_id}:run1": time.time() + 300})
    assert recovery.sweep(redis_conn, ["metrics"]) == [job_id]
    run_worker("metrics")
    done = row(job_id)
    assert (done.state, done.attempts) == ("finished", 2)
    assert [(e["n"], e["outcome"], e["worker"]) for e in done.history] == [(1, "abandoned", "dead-worker"), (2, "succeeded", done.history[1]["worker"])]
    assert "dead-worker" in done.history[0]["error"] and done.history[0]["duration"] >= 3
    assert any(f"job {job_id} started" in r.getMessage() and "attempt=2" in r.getMessage() for r in caplog.records)


def test_a_work_horse_killed_mid_job_is_an_abandoned_attempt(redis_conn, caplog, django_capture_on_commit_callbacks):
    """A horse that dies on every run (SIGKILL, as the OOM killer does) is requeued at once each
    time, its retries untouched, and fails with its death's reason after the abandon limit."""
    from app.queueing.recovery import MAX_ABANDONS
    from app.queueing.workers import ForkingWorker

    caplog.set_level(logging.DEBUG)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = fixtures.die_like_the_oom_killer.delay().id
    ForkingWorker([django_rq.get_queue("metrics")], connection=redis_conn).work(burst=True, with_scheduler=False)
    failed = row(job_id)
    assert (failed.state, failed.attempts, failed.max_attempts) == ("failed", MAX_ABANDONS + 1, 1)
    assert [entry["outcome"] for entry in failed.history] == ["abandoned"] * (MAX_ABANDONS + 1)
    assert all("Work-horse terminated unexpectedly" in entry["error"] and entry["worker"] for entry in failed.history)
    assert "AbandonedJobError" in failed.failure_reason and "(signal 9)" in failed.failure_reason
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and job_id in r.getMessage()]
    assert len(errors) == 1 and "AbandonedJobError" in errors[0].getMessage()


def test_a_refusal_is_one_refused_entry_and_nothing_of_the_hashs_meta(redis_conn, run_worker, django_capture_on_commit_callbacks):
    """A hash someone wrote into Redis under a pending job's id is refused; the ledger holds the
    refusal alone, nothing of what that hash's meta says about earlier attempts."""
    with django_capture_on_commit_callbacks(execute=True):
        job_id = fixtures.say_hello.delay("x").id
    job = QueueingJob.fetch(job_id, connection=redis_conn)
    job.meta.update(errors=[{"error": "an attempt that never was", "outcome": "failed", "ended_at": "2000-01-01T00:00:00+00:00"}], stranger=1)
    job.save_meta()
    run_worker("metrics")
    refused = row(job_id)
    assert (refused.state, refused.attempts) == ("failed", 1) and "ForgedJobError" in refused.failure_reason
    [entry] = refused.history
    assert entry["outcome"] == "refused" and entry["error"].startswith("ForgedJobError") and "never was" not in str(refused.history)


def test_eager_mode_writes_the_same_ledger(tmp_path, settings, django_capture_on_commit_callbacks):
    settings.QUEUEING_EAGER = True
    with django_capture_on_commit_callbacks(execute=True):
        job_id = fixtures.fail_until_attempt.delay(str(tmp_path / "runs"), 2).id
    done = row(job_id)
    assert (done.state, done.attempts, done.max_attempts, done.next_retry_at) == ("finished", 2, 3, None)
    assert [(e["n"], e["outcome"]) for e in done.history] == [(1, "retried"), (2, "succeeded")]
    assert done.last_error == "TransientJobError: attempt 1"


def test_the_purge_keeps_ended_rows_for_the_retention_setting(settings):
    settings.QUEUEING_LEDGER_RETENTION_DAYS = 2
    now = timezone.now()
    for job_id, ended_days_ago in (("kept", 1), ("purged", 3)):
        BackgroundJob.objects.create(id=job_id, queue="metrics", func="f", state="finished", ended_at=now - timedelta(days=ended_days_ago))
    assert outbox.purge_ended() == 1
    assert list(BackgroundJob.objects.values_list("id", flat=True)) == ["kept"]
    settings.QUEUEING_LEDGER_RETENTION_DAYS = 1
    assert outbox.purge_ended() == 1


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_retention_under_one_day_stops_the_settings_from_loading(value):
    env = {**os.environ, "QUEUEING_LEDGER_RETENTION_DAYS": value, "DJANGO_SETTINGS_MODULE": "app.settings"}
    loaded = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert loaded.returncode != 0 and "QUEUEING_LEDGER_RETENTION_DAYS must be at least 1" in loaded.stderr


def test_attempt_numbers_agree_in_logs_ledger_and_after_an_operators_requeue(tmp_path, run_worker, caplog, django_capture_on_commit_callbacks):
    """A permanent failure, then an operator's requeue (failedjobs --requeue) that succeeds: attempt 2
    everywhere (the logs said attempt=4 for it: RQ's retries_left, cleared by the triage)."""
    caplog.set_level(logging.INFO, logger="app.queueing.workers")
    with django_capture_on_commit_callbacks(execute=True):
        job_id = fixtures.fail_permanently_once.delay(str(tmp_path / "runs")).id
    run_worker("metrics")
    assert (row(job_id).state, row(job_id).attempts) == ("failed", 1)
    # The operator's action, as the task browser records it: the worker's next write keeps it.
    action = {"action": "requeue", "by": "olga", "at": datetime.now(UTC).isoformat()}
    BackgroundJob.objects.filter(pk=job_id).update(actions=[action])
    call_command("failedjobs", "--queue", "metrics", "--requeue", stdout=StringIO())
    run_worker("metrics")
    done = row(job_id)
    assert (done.state, done.attempts) == ("finished", 2)
    assert [e.get("n") for e in done.history] == [1, 2] and done.actions == [action]
    assert [e.get("outcome") for e in done.history] == ["failed", "succeeded"]
    lines = [r.getMessage() for r in caplog.records if job_id in r.getMessage()]
    attempts = [int(m.group(1)) for line in lines for m in [re.search(r"attempt[= ](\d+)", line)] if m]
    assert attempts == [1, 1, 2, 2], lines  # started 1, failed 1, started 2, succeeded 2
    assert "failed (attempt 1/4, permanent): PermanentJobError: the row is not there yet" in "\n".join(lines)
    assert fixtures.fail_permanently_once.task.get_result(job_id).attempts == 2  # the task API's count


def test_a_transient_retry_logs_one_warning_line_and_no_error(tmp_path, run_worker, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = fixtures.fail_until_attempt.delay(str(tmp_path / "runs"), 3).id
    run_worker("metrics")
    about = [r for r in caplog.records if job_id in r.getMessage()]
    loud = [r for r in about if r.levelno >= logging.WARNING]
    assert [r.levelname for r in loud] == ["WARNING"], [r.getMessage() for r in loud]
    [line] = loud
    assert re.fullmatch(
        rf"job {job_id} will be retried \(attempt 1/3\) in \d+s at \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00: TransientJobError: attempt 1",
        line.getMessage(),
    ), line.getMessage()
    assert (line.job_id, line.queue, line.func, line.attempt, line.max_attempts) == (job_id, "metrics", "tests.fixtures.fail_until_attempt", 1, 3)
    assert datetime.fromisoformat(line.next_run) == row(job_id).next_retry_at
    assert not any("remaining" in r.getMessage() for r in about)  # RQ's own "N remaining" is filtered
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in about)  # the traceback, at DEBUG


def test_a_member_reads_no_exception_path(client, run_worker, django_capture_on_commit_callbacks):
    member = make_user("mira")
    client.force_login(member)
    with django_capture_on_commit_callbacks(execute=True):
        words = fixtures.fail_for_member.delay(member.pk, True).id
        bug = fixtures.fail_for_member.delay(member.pk, False).id
    run_worker("metrics")
    answers = {job_id: client.get(f"/api/jobs/{job_id}/").json() for job_id in (words, bug)}
    assert answers[words]["status"] == "failed" and answers[words]["failure_reason"] == "that file is not an image"
    assert answers[bug]["status"] == "failed" and answers[bug]["failure_reason"] == "the job failed; we have been notified"
    django_rq.get_queue("metrics").connection.flushdb()  # past RQ's TTLs: the row answers alone, the same way
    assert client.get(f"/api/jobs/{bug}/").json()["failure_reason"] == "the job failed; we have been notified"
    assert client.get(f"/api/jobs/{words}/").json()["failure_reason"] == "that file is not an image"
    for answer in answers.values():
        assert "app.queueing" not in str(answer) and "Traceback" not in str(answer) and "KeyError" not in str(answer)
    assert row(bug).last_error == "KeyError: 'internal_secret_column'"  # operators read it in the ledger
