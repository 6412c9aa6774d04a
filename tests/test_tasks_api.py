"""Django's standard task API (django_tasks; django.tasks on Django 6) gets every guarantee of
`.delay()`: declared functions on declared queues, the outbox row in the caller's transaction,
the push after commit, the reconciler, the workers' refusals, results from the layer's records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import django_rq
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import transaction
from django_tasks import TaskResultStatus, default_task_backend, task, task_backends
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist, TaskResultMismatch
from rq.job import Job, JobStatus
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from app.jobs import emails, metrics
from app.queueing import catalog as registry
from app.queueing import dispatch, outbox
from app.queueing.models import BackgroundJob
from app.queueing.tasks_backend import CancelledJobError, OutboxTaskBackend
from tests import fixtures
from tests.factories import make_user

pytestmark = pytest.mark.django_db

Status = TaskResultStatus


def queued(name: str = "metrics") -> list[str]:
    return django_rq.get_queue(name).get_job_ids()


def row(job_id: str) -> BackgroundJob:
    return BackgroundJob.objects.get(pk=job_id)


def fire_due_retries(name: str = "metrics") -> None:
    """Make scheduled retries due now and let RQ's scheduler move them back to their queue."""
    queue = django_rq.get_queue(name)
    scheduled = queue.scheduled_job_registry
    for job_id in scheduled.get_job_ids():
        queue.connection.zadd(scheduled.key, {job_id: 1})
    scheduler = RQScheduler([queue], connection=queue.connection)
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()


# -- the backend and the declaration ------------------------------------------------------------


def test_the_configured_backend_is_the_layers_and_declares_what_it_supports():
    assert isinstance(task_backends["default"], OutboxTaskBackend)
    assert (default_task_backend.supports_defer, default_task_backend.supports_get_result) == (True, True)
    assert default_task_backend.supports_async_task and default_task_backend.supports_priority
    assert default_task_backend.queues == set(registry.queues()) >= {"emails", "images", "metrics"}


def test_a_task_is_declared_with_its_queues_policy_and_one_declaration_per_function():
    spec = registry.spec_for("tests.fixtures.add_numbers")
    policy = registry.queue("metrics")
    assert (spec.queue_name, spec.timeout, spec.retries, spec.result_ttl) == ("metrics", policy.timeout, policy.retries, policy.result_ttl)
    # A domain job's Task is a view of its @job declaration: the same queue, policy and function.
    view = emails.send_welcome_email.task
    assert view.func is emails.send_welcome_email.func and view.queue_name == "emails"
    assert emails.send_welcome_email.task is view and registry.spec_for(view.func) is emails.send_welcome_email.spec
    with pytest.raises(InvalidTaskError, match="declared on queue 'emails'"):
        view.using(queue_name="metrics")  # one function, one policy
    with pytest.raises(InvalidTaskError, match="declared on queue 'emails'"):
        task(queue_name="images")(emails.send_welcome_email.func)


@pytest.mark.parametrize("queue_name", ["default", "nope", "rq:queue:emails"])
def test_a_queue_that_is_not_declared_is_refused_with_the_standard_error(queue_name):
    with pytest.raises(InvalidTaskError, match="not a declared queue"):
        task(queue_name=queue_name)(fixtures.echo_call.func)
    with pytest.raises(InvalidTaskError, match="not a declared queue"):
        fixtures.add_numbers.using(queue_name=queue_name)


def test_calls_that_cannot_run_are_refused_in_the_caller(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(TypeError, match="add_numbers"):
            fixtures.add_numbers.enqueue(1, 2, 3)  # does not bind
        with pytest.raises(TypeError, match="JSON values"):
            fixtures.add_numbers.enqueue(make_user("x"), 2)  # a model instance, not an id
        with pytest.raises(TypeError, match="JSON values"):
            fixtures.add_numbers.enqueue(float("nan"), 2)
        with pytest.raises(InvalidTaskError, match="aware"):
            fixtures.add_numbers.using(run_after=datetime(2030, 1, 1))  # noqa: DTZ001
        with pytest.raises(InvalidTaskError, match="priority"):
            fixtures.add_numbers.using(priority=101)
    assert BackgroundJob.objects.count() == 0 and queued() == []


# -- enqueue: the outbox, after commit ---------------------------------------------------------


def test_enqueue_records_in_the_transaction_pushes_after_commit_and_runs(run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = fixtures.add_numbers.enqueue(2, 3)
        assert queued() == []  # not before the commit
        assert row(result.id).state == BackgroundJob.State.PENDING and row(result.id).func == "tests.fixtures.add_numbers"
        assert result.status == Status.READY and result.args == [2, 3] and result.attempts == 0
    assert queued() == [result.id]
    job = Job.fetch(result.id, connection=django_rq.get_queue("metrics").connection, serializer=JSONSerializer)
    assert job.timeout == registry.queue("metrics").timeout and job.retries_left == registry.queue("metrics").retries.max
    run_worker("metrics")
    result.refresh()
    assert result.status == Status.SUCCESSFUL and result.return_value == 5 and result.attempts == 1 and result.errors == []
    assert result.finished_at is not None and result.started_at is not None
    assert fixtures.add_numbers.get_result(result.id).return_value == 5
    assert row(result.id).state == BackgroundJob.State.FINISHED


def test_a_rolled_back_transaction_enqueues_nothing(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                fixtures.add_numbers.enqueue(1, 1)
                emails.send_welcome_email.task.enqueue(1)
                raise RuntimeError("rolled back")
    assert BackgroundJob.objects.count() == 0 and queued("metrics") == [] and queued("emails") == []


def test_redis_down_at_commit_loses_nothing_the_reconciler_sends_it(settings, redis_conn, run_worker):
    from app.queueing.connections import DeclaredQueues

    real_queues = settings.RQ_QUEUES
    settings.RQ_QUEUES = DeclaredQueues({**real_queues.connection, "URL": "redis://127.0.0.1:1/0"})
    with transaction.atomic():
        result = fixtures.add_numbers.enqueue(20, 22)  # committed; its push meets no Redis (logged)
    settings.RQ_QUEUES = real_queues
    assert queued() == [] and default_task_backend.get_result(result.id).status == Status.READY
    assert outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=0)["resent"] == 1
    assert queued() == [result.id]
    run_worker("metrics")
    assert fixtures.add_numbers.get_result(result.id).return_value == 42


def test_inside_a_request_the_push_waits_for_the_response(django_capture_on_commit_callbacks):
    dispatch.on_request_started()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = fixtures.add_numbers.enqueue(1, 2)
        assert queued() == []  # committed, the response not closed yet
    finally:
        dispatch.on_request_finished()
    assert queued() == [result.id]


# -- options ------------------------------------------------------------------------------------


def test_run_after_is_delay_at_and_comes_back_after_redis_lost_it(redis_conn, django_capture_on_commit_callbacks):
    due = datetime.now(UTC) + timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        result = fixtures.add_numbers.using(run_after=due).enqueue(1, 1)
    scheduled = lambda: [m.decode() for m in redis_conn.zrange("rq:scheduled:metrics", 0, -1)]  # noqa: E731
    assert scheduled() == [result.id] and queued() == [] and row(result.id).due_at == due
    assert default_task_backend.get_result(result.id).status == Status.READY
    score = redis_conn.zscore("rq:scheduled:metrics", result.id)
    redis_conn.flushdb()
    assert outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=0)["resent"] == 1
    assert scheduled() == [result.id] and redis_conn.zscore("rq:scheduled:metrics", result.id) == score and queued() == []


def test_priority_above_zero_goes_to_the_front_of_its_queue_and_runs_first(run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        normal = [fixtures.add_numbers.enqueue(i, 0).id for i in range(3)]
        low = fixtures.add_numbers.using(priority=-5).enqueue(9, 0).id
    dispatch.on_request_started()  # one request's jobs: sent together, in their order
    with django_capture_on_commit_callbacks(execute=True):
        urgent = [fixtures.add_numbers.using(priority=10).enqueue(i, 100).id for i in range(2)]
        also_normal = fixtures.add_numbers.enqueue(5, 5).id
    dispatch.on_request_finished()
    with django_capture_on_commit_callbacks(execute=True):
        latest = fixtures.add_numbers.using(priority=1).enqueue(0, 0).id  # pushed later: ahead of the earlier ones
    order = [latest, *urgent, *normal, low, also_normal]
    assert queued() == order  # > 0: the front; <= 0: the back, the queue's order
    run_worker("metrics")
    connection = django_rq.get_queue("metrics").connection
    assert sorted(order, key=lambda job_id: Job.fetch(job_id, connection=connection, serializer=JSONSerializer).started_at) == order


def test_takes_context_gets_the_attempt_number_and_a_retry_waiting_is_ready_with_its_errors(run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = fixtures.attempt_seen.enqueue(fail_until=3)
    run_worker("metrics")
    result.refresh()
    assert result.status == Status.READY and result.attempts == 1  # its retry waits (the queue's backoff)
    assert [e.exception_class_path for e in result.errors] == ["app.queueing.errors.TransientJobError"]
    assert "attempt 1 fails" in result.errors[0].traceback
    fire_due_retries()
    run_worker("metrics")
    fire_due_retries()
    run_worker("metrics")
    result.refresh()
    assert result.status == Status.SUCCESSFUL and result.return_value == 3 and result.attempts == 3
    assert [e.traceback.strip().splitlines()[-1] for e in result.errors] == [
        "app.queueing.errors.TransientJobError: attempt 1 fails", "app.queueing.errors.TransientJobError: attempt 2 fails",
    ]
    assert result.errors[0].exception_class is fixtures.TransientJobError


def test_a_permanent_failure_is_failed_with_its_error_and_kept_after_the_ttl(redis_conn, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        failed = fixtures.fail_permanently.task.enqueue("no such row")
        succeeded = fixtures.add_numbers.enqueue(4, 4)
    run_worker("metrics")
    before = default_task_backend.get_result(failed.id)
    assert before.status == Status.FAILED and before.attempts == 1
    assert before.errors[0].exception_class_path == "app.queueing.errors.PermanentJobError" and "no such row" in before.errors[0].traceback
    with pytest.raises(ValueError, match="failed"):
        before.return_value  # noqa: B018
    redis_conn.flushdb()  # what RQ's result and failure TTLs do, sooner
    after = default_task_backend.get_result(failed.id)
    assert (after.status, after.attempts, after.errors) == (before.status, before.attempts, before.errors)
    kept = fixtures.add_numbers.get_result(succeeded.id)
    assert (kept.status, kept.return_value, kept.attempts) == (Status.SUCCESSFUL, 8, 1) and kept.started_at is not None


def test_running_is_running_and_an_operators_cancel_is_failed(redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = fixtures.add_numbers.enqueue(1, 2)
    redis_conn.hset(f"rq:job:{result.id}", "status", "started")
    assert default_task_backend.get_result(result.id).status == Status.RUNNING
    redis_conn.hset(f"rq:job:{result.id}", "status", "queued")
    from app.queueing.jobclass import QueueingJob

    QueueingJob.fetch(result.id, connection=redis_conn).delete()  # an operator's delete
    answer = default_task_backend.get_result(result.id)
    assert answer.status == Status.FAILED and answer.errors[0].exception_class is CancelledJobError


def test_an_error_class_read_from_redis_imports_nothing(redis_conn, django_capture_on_commit_callbacks):
    import sys

    from rq.job import Job as RQJob

    with django_capture_on_commit_callbacks(execute=True):
        result = fixtures.add_numbers.enqueue(1, 2)
    job = RQJob.fetch(result.id, connection=redis_conn, serializer=JSONSerializer)
    job.meta["errors"] = [
        {"exception_class_path": "antigravity.Fly", "traceback": "forged", "worker": "w"},  # a module never loaded here
        {"exception_class_path": "builtins.ValueError", "traceback": "real", "worker": "w"},
    ]
    job.save_meta()
    answer = default_task_backend.get_result(result.id)
    assert [e.exception_class_path for e in answer.errors] == ["builtins.Exception", "builtins.ValueError"]
    assert [e.exception_class for e in answer.errors] == [Exception, ValueError] and "antigravity" not in sys.modules


def test_get_result_refuses_unknown_ids_and_another_tasks_result(django_capture_on_commit_callbacks):
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("no-such-id")
    with django_capture_on_commit_callbacks(execute=True):
        result = fixtures.add_numbers.enqueue(1, 2)
    with pytest.raises(TaskResultMismatch):
        fixtures.attempt_seen.get_result(result.id)


def test_an_async_task_runs_on_the_workers(run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = fixtures.add_later.enqueue(5, 6)
    run_worker("metrics")
    assert fixtures.add_later.get_result(result.id).return_value == 11


# -- async callers ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_aenqueue_adelay_and_aget_result_from_async_code_push_after_the_response(run_worker):
    async def view_body() -> tuple[str, str]:
        await sync_to_async(dispatch.on_request_started)()
        try:
            result = await fixtures.add_numbers.aenqueue(7, 8)
            job = await metrics.refresh_all_dashboards.adelay()
            assert (await fixtures.add_numbers.aget_result(result.id)).status == Status.READY
            assert queued() == []  # after the response, not before
            return result.id, job.id
        finally:
            await sync_to_async(dispatch.on_request_finished)()

    task_id, job_id = async_to_sync(view_body)()
    assert set(queued()) == {task_id, job_id}
    run_worker("metrics")
    answer = async_to_sync(fixtures.add_numbers.aget_result)(task_id)
    assert answer.return_value == 15


@pytest.mark.django_db(transaction=True)
def test_aenqueue_in_a_rolled_back_transaction_enqueues_nothing():
    def rolled_back() -> None:
        with transaction.atomic():
            fixtures.add_numbers.enqueue(1, 2)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        async_to_sync(sync_to_async(rolled_back))()
    assert BackgroundJob.objects.count() == 0 and queued() == []


# -- workers: a job the layer did not write ------------------------------------------------------


def _hand_written(redis_conn, func_name: str) -> str:  # type: ignore[no-untyped-def]
    """A job hash written into Redis by hand (no outbox row, not by the layer), and queued."""
    job_id = "forged-0001"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    redis_conn.hset(f"rq:job:{job_id}", mapping={
        "data": JSONSerializer.dumps((func_name, None, [40, 2], {})), "status": "queued", "origin": "metrics",
        "created_at": now, "enqueued_at": now, "description": "forged", "timeout": 60,
    })
    redis_conn.rpush("rq:queue:metrics", job_id)
    redis_conn.sadd("rq:queues", "rq:queue:metrics")
    return job_id


def test_a_hand_written_job_naming_an_undeclared_function_is_refused(redis_conn, run_worker):
    job_id = _hand_written(redis_conn, "tests.fixtures.not_declared")
    run_worker("metrics")
    job = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FAILED and "not a declared job" in job.latest_result().exc_string


def test_a_hand_written_job_naming_a_declared_task_is_refused(redis_conn, run_worker):
    job_id = _hand_written(redis_conn, "tests.fixtures.add_numbers")
    run_worker("metrics")
    job = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FAILED  # not run: the layer did not write it
    assert not BackgroundJob.objects.filter(pk=job_id).exists()
