"""The in-process worker's merged bookkeeping keeps every promise RQ makes about a finished job."""

from __future__ import annotations

from collections import Counter

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import now

from app.jobs.runtime import InProcessWorker
from app.services import job_metrics

pytestmark = pytest.mark.django_db  # the worker closes stale database connections around each job


@pytest.fixture
def queue(redis_conn: redis.Redis) -> Queue:
    return Queue("metrics", connection=redis_conn, serializer=JSONSerializer)


def round_trips(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count what reaches Redis: each pipeline execute, and each command sent on its own."""
    seen: Counter[str] = Counter()
    execute, immediate, command = redis.client.Pipeline.execute, redis.client.Pipeline.immediate_execute_command, redis.Redis.execute_command

    def counted_execute(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen["pipeline"] += 1
        return execute(self, *args, **kwargs)

    def counted_immediate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen[str(args[0]).upper()] += 1
        return immediate(self, *args, **kwargs)

    def counted_command(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen[str(args[0]).upper()] += 1
        return command(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", counted_execute)
    monkeypatch.setattr(redis.client.Pipeline, "immediate_execute_command", counted_immediate)
    monkeypatch.setattr(redis.Redis, "execute_command", counted_command)
    return seen


def test_a_finished_job_is_fully_recorded_in_four_round_trips(queue: Queue, redis_conn: redis.Redis, monkeypatch):
    jobs = [queue.enqueue("tests.fixtures.say_hello", f"n{i}") for i in range(20)]
    worker = InProcessWorker([queue], connection=redis_conn)
    worker.register_birth()  # what work() does first, and its periodic maintenance: only the jobs are counted below
    worker.last_cleaned_at = now()
    seen = round_trips(monkeypatch)
    for _ in jobs:
        job, job_queue = worker.dequeue_job_and_maintain_ttl(timeout=1)
        worker.execute_job(job, job_queue)
    monkeypatch.undo()

    # BLMOVE, HGETALL, and two pipelines: start, success. RQ 3.0 alone also sends a third
    # pipeline, the worker's state twice, the job's heartbeat, WATCH and SMEMBERS.
    per_job = {name: count / len(jobs) for name, count in seen.items()}
    assert 2 <= per_job.pop("pipeline") <= 2.1, seen  # plus, now and then, the once-a-second worker heartbeat
    assert set(per_job) <= {"BLMOVE", "HGETALL", "HSET"}, seen  # HSET: the first 'idle'
    assert per_job["BLMOVE"] == per_job["HGETALL"] == 1
    assert per_job.get("HSET", 0) < 0.5, seen

    for index, enqueued in enumerate(jobs):
        job = Job.fetch(enqueued.id, connection=redis_conn, serializer=JSONSerializer)
        assert job.get_status() == JobStatus.FINISHED
        assert job.latest_result().return_value == f"hello n{index}"
        assert job.last_heartbeat is not None and job.ended_at is not None
    assert sorted(queue.finished_job_registry.get_job_ids()) == sorted(job.id for job in jobs)
    assert queue.started_job_registry.get_job_ids() == []
    assert not redis_conn.keys("rq:execution:*")
    worker_hash = redis_conn.hgetall(worker.key)
    assert worker_hash[b"state"] == b"idle"
    assert int(worker_hash[b"successful_job_count"]) == len(jobs)
    stats = redis_conn.hgetall(job_metrics.KEY.format(func="tests.fixtures.say_hello"))
    assert int(stats[b"success"]) == len(jobs)
    assert sum(int(v) for k, v in stats.items() if k.startswith(b"duration_bucket:")) == len(jobs)


def test_dependents_of_a_job_still_run(queue: Queue, redis_conn: redis.Redis):
    parent = queue.enqueue("tests.fixtures.say_hello", "parent")
    child = queue.enqueue("tests.fixtures.say_hello", "child", depends_on=parent)
    assert child.get_status() == JobStatus.DEFERRED
    InProcessWorker([queue], connection=redis_conn).work(burst=True, with_scheduler=False)
    assert child.get_status(refresh=True) == JobStatus.FINISHED
    assert child.latest_result().return_value == "hello child"


def test_a_failed_job_takes_rqs_own_path(queue: Queue, redis_conn: redis.Redis):
    job = queue.enqueue("tests.fixtures.no_such_function")
    worker = InProcessWorker([queue], connection=redis_conn)
    worker.work(burst=True, with_scheduler=False)
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert queue.failed_job_registry.get_job_ids() == [job.id]
    assert redis_conn.hget(worker.key, "state") in (b"idle", None)  # None: the burst worker has left
    assert int(redis_conn.hget(job_metrics.KEY.format(func="tests.fixtures.no_such_function"), "failure")) == 1


def test_a_job_whose_data_vanished_while_it_ran_is_written_whole_again(queue: Queue, redis_conn: redis.Redis):
    job = queue.enqueue("tests.fixtures.lose_own_job_data", description="lost while running")
    InProcessWorker([queue], connection=redis_conn).work(burst=True, with_scheduler=False)
    again = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer)
    assert again.get_status() == JobStatus.FINISHED
    assert again.func_name == "tests.fixtures.lose_own_job_data" and again.origin == "metrics"
    assert again.description == "lost while running"
    assert again.latest_result().return_value == "ran"


def test_rq_speedups_are_installed_and_answer_as_rq_does():
    import datetime

    import rq.job
    import rq.utils
    from rq.serializers import DefaultSerializer

    from app.jobs import rq_speedups

    assert rq_speedups.INSTALLED, "rq was upgraded: check app/jobs/rq_speedups.py against it"
    assert rq.job.resolve_serializer is rq_speedups.resolve_serializer
    for serializer in (JSONSerializer, None, "rq.serializers.JSONSerializer", DefaultSerializer):
        assert rq_speedups.resolve_serializer(serializer) is rq_speedups._original_resolve(serializer)
    with pytest.raises(NotImplementedError):
        rq_speedups.resolve_serializer(object())
    moment = datetime.datetime(2026, 11, 25, 16, 41, 53, 123456, tzinfo=datetime.timezone.utc)
    for text in (rq.utils.utcformat(moment), "2026-11-25T16:41:53Z", "2026-11-25T16:41:53.000001Z"):
        assert rq.utils.utcparse(text) == rq_speedups._original_utcparse(text)
    assert rq.utils.utcparse(rq.utils.utcformat(moment)) == moment
    with pytest.raises(ValueError):
        rq.utils.utcparse("2026-11-25 16:41:53")
