"""Nothing from Redis runs code that is not declared: hand-written jobs are refused by the worker
(failed with a readable reason, logged), before anything is imported or called."""

from __future__ import annotations

import os
import pickle
import sys
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from rq import Callback, Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from app.queueing.models import BackgroundJob
from app.queueing.workers import ForkingWorker, InProcessWorker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=[InProcessWorker, ForkingWorker], ids=["in-process", "forking"])
def worker_class(request):  # type: ignore[no-untyped-def]
    return request.param


def plain_queue(connection: redis.Redis, name: str = "emails", serializer=JSONSerializer) -> Queue:  # type: ignore[no-untyped-def]
    """RQ's own Queue class: what anyone who can write to Redis can do, bypassing the project."""
    return Queue(name, connection=connection, serializer=serializer)


def work(worker_class, connection: redis.Redis, *names: str) -> None:  # type: ignore[no-untyped-def]
    queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in names or ("emails",)]
    worker_class(queues, connection=connection).work(burst=True, with_scheduler=False)


def assert_refused(connection: redis.Redis, job_id: str, reason: str, queue: str = "emails") -> None:
    job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FAILED
    assert connection.zscore(f"rq:failed:{queue}", job_id) is not None
    assert reason in job.latest_result().exc_string


@pytest.mark.parametrize("func", ["os.system", "subprocess.run", "tests.fixtures.not_declared", "app.services.accounts.register"])
def test_a_hand_written_job_calling_an_undeclared_function_is_refused(worker_class, redis_conn, tmp_path, func, caplog):
    marker = tmp_path / "ran"
    argument = f"touch {marker}" if func in ("os.system",) else [sys.executable, "-c", f"open({str(marker)!r}, 'w')"] if func == "subprocess.run" else str(marker)
    job = plain_queue(redis_conn).enqueue_call(func, args=[argument])
    work(worker_class, redis_conn)
    assert not marker.exists()
    assert_refused(redis_conn, job.id, f"{func!r} is not a declared job")
    assert f"job {job.id} refused on 'emails'" in caplog.text


def test_an_undeclared_callback_of_a_declared_job_is_refused(worker_class, redis_conn, tmp_path, smtp_sink):
    marker = tmp_path / "callback-ran"
    job = plain_queue(redis_conn).enqueue_call(
        "app.jobs.emails.send_email", args=["a@example.org", "Hi", "<p>x</p>"],
        on_success=Callback("tests.fixtures.on_success_undeclared"), meta={"marker": str(marker)},
    )
    work(worker_class, redis_conn)
    assert not marker.exists() and smtp_sink.messages == []  # the job itself did not run either
    assert_refused(redis_conn, job.id, "callback 'tests.fixtures.on_success_undeclared' is not declared")


class RunsACommand:
    """A pickle that runs `touch <marker>` when unpickled: what an intruder would write."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_job_is_refused_without_unpickling_it(worker_class, redis_conn, tmp_path):
    marker = tmp_path / "unpickled"
    job = plain_queue(redis_conn).enqueue_call("app.jobs.emails.send_welcome_email", args=[1])
    payload = pickle.dumps(("app.jobs.emails.send_welcome_email", None, [RunsACommand(marker)], {}))
    redis_conn.hset(job.key, mapping={"data": zlib.compress(payload), "meta": pickle.dumps({"x": RunsACommand(marker)})})
    work(worker_class, redis_conn)
    assert not marker.exists()
    assert_refused(redis_conn, job.id, "could not be read as a JSON job")


def test_jobs_the_schedulers_move_to_a_queue_are_refused_too(worker_class, redis_conn, tmp_path):
    from rq.scheduler import RQScheduler
    from rq_scheduler import Scheduler

    from app.queueing.jobclass import QueueingJob
    from app.queueing.scheduling import ProjectScheduler

    marker_rq, marker_rqs = tmp_path / "rq", tmp_path / "rq-scheduler"
    via_rq = plain_queue(redis_conn).enqueue_in(timedelta(seconds=-1), "os.system", f"touch {marker_rq}")
    via_rq_scheduler = Scheduler(queue_name="emails", connection=redis_conn, job_class=QueueingJob).enqueue_at(
        datetime.now(UTC) - timedelta(seconds=1), "os.system", f"touch {marker_rqs}"
    )
    scheduler = RQScheduler(["emails"], connection=redis_conn, serializer=JSONSerializer)
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    ProjectScheduler(queue_name="emails", connection=redis_conn).enqueue_jobs()
    # RQ's scheduler moves what is due and the worker refuses it; the project's rq-scheduler
    # pass refuses what the layer did not make before it reaches a queue.
    assert plain_queue(redis_conn).get_job_ids() == [via_rq.id]
    assert_refused(redis_conn, via_rq_scheduler.id, "'os.system' is not a declared job")
    assert via_rq_scheduler.id not in Scheduler(queue_name="emails", connection=redis_conn, job_class=QueueingJob)
    work(worker_class, redis_conn)
    assert not marker_rq.exists() and not marker_rqs.exists()
    assert_refused(redis_conn, via_rq.id, "'os.system' is not a declared job")


def test_the_job_class_itself_resolves_only_declared_functions(redis_conn):
    from app.queueing import UndeclaredJobError
    from app.queueing.jobclass import QueueingJob

    job = plain_queue(redis_conn).enqueue_call("os.system", args=["true"])
    fetched = QueueingJob.fetch(job.id, connection=redis_conn)
    with pytest.raises(UndeclaredJobError, match="refused without importing it"):
        _ = fetched.func
    declared = plain_queue(redis_conn).enqueue_call("app.jobs.metrics.refresh_all_dashboards")
    from app.jobs.metrics import refresh_all_dashboards

    assert QueueingJob.fetch(declared.id, connection=redis_conn).func is refresh_all_dashboards.func


def test_a_refused_job_with_an_outbox_row_closes_it(redis_conn, worker_class):
    BackgroundJob.objects.create(id="x" * 32, queue="emails", func="os.system")
    plain_queue(redis_conn).enqueue_call("os.system", args=["true"], job_id="x" * 32)
    work(worker_class, redis_conn)
    assert BackgroundJob.objects.get(pk="x" * 32).state == BackgroundJob.State.FAILED
