"""Jobs queued from one RQ-built template are the jobs RQ's own enqueue_many would have queued."""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import datetime

import django_rq
import pytest
from rq import Queue
from rq.job import Job, JobStatus

from app.jobs.dispatch import Push
from app.jobs.job_hashes import PER_CALL_FIELDS, queue_jobs
from app.jobs.queues import EMAILS, METRICS, QueueSpec, get_queue, job_options

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = "tests.fixtures.echo_call"
CALLS = [
    ([], {}),
    ([7], {}),
    ([1, "Zoë <script>", 2.5, None, True], {}),
    ([{"nested": [1, {"deep": "é"}]}], {"flag": False, "ids": [3, 4]}),
    ([], {"only": "kwargs"}),
]


def queue_with_template(spec: QueueSpec, path: str, calls) -> list[str]:  # type: ignore[no-untyped-def]
    pushes = [Push(spec, uuid.uuid4().hex, path, list(args), kwargs) for args, kwargs in calls]
    queue = get_queue(spec)
    with queue.connection.pipeline() as pipe:
        queue_jobs(pipe, queue, pushes)
        pipe.execute()
    return [push.job_id for push in pushes]


def queue_with_rq(spec: QueueSpec, path: str, calls) -> list[str]:  # type: ignore[no-untyped-def]
    queue = django_rq.get_queue(spec.name)
    datas = []
    for args, kwargs in calls:
        job_id = uuid.uuid4().hex
        datas.append(Queue.prepare_data(path, args=list(args), kwargs=kwargs, **job_options(spec, job_id, path, list(args))))
    with queue.connection.pipeline() as pipe:
        jobs = queue.enqueue_many(datas, pipeline=pipe)
        pipe.execute()
    return [job.id for job in jobs]


def stored(connection, job_id: str) -> dict[bytes, bytes]:  # type: ignore[no-untyped-def]
    return connection.hgetall(f"rq:job:{job_id}")


@pytest.mark.parametrize("spec", [EMAILS, METRICS, dataclasses.replace(METRICS, max_retries=0)], ids=["emails", "metrics", "no-retries"])
def test_every_field_is_the_one_rq_enqueue_many_writes(redis_conn, spec):
    random.seed(1234)  # the same jitter draws for both: retry intervals are compared too
    ours = queue_with_template(spec, ECHO, CALLS)
    random.seed(1234)
    theirs = queue_with_rq(spec, ECHO, CALLS)

    timestamps = {b"created_at", b"enqueued_at"}
    for our_id, their_id in zip(ours, theirs):
        our_hash, their_hash = stored(redis_conn, our_id), stored(redis_conn, their_id)
        assert our_hash.keys() == their_hash.keys()
        assert {k: v for k, v in our_hash.items() if k not in timestamps} == {k: v for k, v in their_hash.items() if k not in timestamps}
        assert redis_conn.ttl(f"rq:job:{our_id}") == redis_conn.ttl(f"rq:job:{their_id}") == -1  # no expiry either way
        job = Job.fetch(our_id, connection=redis_conn, serializer=get_queue(spec).serializer)
        assert isinstance(job.created_at, datetime) and isinstance(job.enqueued_at, datetime)  # RQ's format, read by RQ
    assert (b"retry_intervals" in stored(redis_conn, ours[0])) == (spec.max_retries > 0)
    assert get_queue(spec).get_job_ids() == ours + theirs
    assert redis_conn.smembers("rq:queues") == {f"rq:queue:{spec.name}".encode()}


def test_only_the_declared_fields_differ_between_jobs_of_one_batch(redis_conn):
    ids = queue_with_template(EMAILS, ECHO, CALLS)
    hashes = [stored(redis_conn, job_id) for job_id in ids]
    differing = {key.decode() for key in hashes[0] if len({h[key] for h in hashes}) > 1}
    assert differing <= PER_CALL_FIELDS
    assert {"data", "description"} <= differing  # the calls do differ: the check above has teeth


def test_the_queue_holds_the_ids_in_call_order_and_a_worker_runs_each_call(redis_conn, run_worker):
    calls = [([index], {"square": index * index}) for index in range(50)]
    ids = queue_with_template(METRICS, ECHO, calls)
    assert get_queue(METRICS).get_job_ids() == ids
    run_worker("metrics")
    jobs = Job.fetch_many(ids, connection=redis_conn, serializer=get_queue(METRICS).serializer)
    assert [job.get_status() for job in jobs] == [JobStatus.FINISHED] * 50
    assert [job.return_value() for job in jobs] == [{"args": [i], "kwargs": {"square": i * i}} for i in range(50)]
    assert [job.description for job in jobs] == [f"echo_call({i})" for i in range(50)]
    assert all(job.retries_left == METRICS.max_retries and len(job.retry_intervals) == METRICS.max_retries for job in jobs)


def assert_refused(redis_conn, pushes: list[Push], reason: str) -> None:  # type: ignore[no-untyped-def]
    queue = get_queue(METRICS)
    with pytest.raises(ValueError, match=reason):
        with queue.connection.pipeline() as pipe:
            queue_jobs(pipe, queue, pushes)
            pipe.execute()
    assert redis_conn.dbsize() == 0  # nothing of the batch written


def test_the_same_id_twice_in_a_batch_is_refused_and_nothing_is_written(redis_conn):
    job_id = uuid.uuid4().hex
    assert_refused(redis_conn, [Push(METRICS, job_id, ECHO, [1], {}), Push(METRICS, job_id, ECHO, [2], {})], "more than once")


def test_an_invalid_id_anywhere_in_the_batch_is_refused_and_nothing_is_written(redis_conn):
    pushes = [Push(METRICS, uuid.uuid4().hex, ECHO, [1], {}), Push(METRICS, "bad:id with space", ECHO, [2], {})]
    assert_refused(redis_conn, pushes, "Job ID")


def test_a_job_rq_would_enqueue_differently_is_refused(redis_conn, monkeypatch):
    from app.jobs import queues

    real = queues.job_options
    monkeypatch.setattr(queues, "job_options", lambda *args: {**real(*args), "ttl": 60})  # RQ would EXPIRE its keys
    assert_refused(redis_conn, [Push(METRICS, uuid.uuid4().hex, ECHO, [1], {})], "RQ's own enqueue")


def test_a_synchronous_queue_still_runs_each_job_at_once(redis_conn, settings):
    queue = django_rq.get_queue("metrics", is_async=False)
    ids = [uuid.uuid4().hex, uuid.uuid4().hex]
    with queue.connection.pipeline() as pipe:
        queue_jobs(pipe, queue, [Push(METRICS, ids[0], ECHO, [1], {}), Push(METRICS, ids[1], ECHO, [2], {"k": 3})])
        pipe.execute()
    jobs = Job.fetch_many(ids, connection=redis_conn, serializer=queue.serializer)
    assert [job.return_value() for job in jobs] == [{"args": [1], "kwargs": {}}, {"args": [2], "kwargs": {"k": 3}}]
    assert [job.get_status() for job in jobs] == [JobStatus.FINISHED] * 2
