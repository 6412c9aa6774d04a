"""A worker frozen past its lease (SIGSTOP: a paused container, a VM stall) must not finish its
copy of the job once it thaws: the job was requeued elsewhere meanwhile (the fence, worker/lease.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from app.queueing import rq_compat
from app.queueing.liveness import LIVENESS_TTL
from tests import redis_db
from tests.e2e.processes import logs, manage, running, stack_env
from tests.settle import outbox_pending, settle
from tests.signing import enqueue_signed

pytestmark = pytest.mark.e2e


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


@pytest.mark.parametrize("command", [["rqworker", "metrics"], ["rqpool", "metrics", "--workers", "1"]], ids=["forking", "in-process"])
def test_a_worker_thawed_after_its_lease_does_not_finish_its_copy(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis, command):
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index)
    manage(env, "migrate", "--noinput")
    marker = tmp_path / "effect"
    job = enqueue_signed(Queue("metrics", connection=redis_conn, serializer=JSONSerializer), "tests.fixtures.sleep_then_mark", 4, str(marker))
    log_dir = tmp_path / "logs"
    with running(env, ["manage.py", *command], log_dir=log_dir) as [worker]:
        deadline = time.monotonic() + 60
        while job.get_status(refresh=True) != JobStatus.STARTED and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job.get_status() == JobStatus.STARTED, logs(log_dir)
        frozen = [worker.pid, *children(worker.pid)]
        frozen += [grandchild for pid in frozen[1:] for grandchild in children(pid)]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(LIVENESS_TTL + 8)  # past the lease: its key is gone, a sweep would requeue the job
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        # The frozen copy had 4 s of work left: once everything has settled (tests/settle.py: a
        # full reconciler cycle with nothing queued, running or claimed) it would have written.
        settle(redis_conn, outbox_pending(env["DATABASE_URL"]), describe=lambda: logs(log_dir))
        writers = {int(line) for line in marker.read_text().split()} if marker.exists() else set()
        assert not writers & set(frozen), (writers, frozen, logs(log_dir))  # a legitimate re-run may have written
        assert f"past its {LIVENESS_TTL} s lease" in logs(log_dir)
        # The job is handed back, not failed: it runs again at once (no retry spent, no backoff
        # waited — a minute for images before), once, and finishes.
        deadline = time.monotonic() + 30
        while job.get_status(refresh=True) != JobStatus.FINISHED and time.monotonic() < deadline:
            time.sleep(0.2)
        assert job.get_status() == JobStatus.FINISHED, (job.get_status(), logs(log_dir))
        assert len(marker.read_text().split()) == 1, marker.read_text()
        assert Queue("metrics", connection=redis_conn, serializer=JSONSerializer).failed_job_registry.count == 0


def test_a_frozen_workers_key_written_again_without_a_ttl_still_expires(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis):
    """RQ writes single fields of a worker's key (its state, its job's working time) with HSET; after
    a FLUSHDB that write makes the key again without a TTL, and its set of executions is gone. A
    worker frozen then would keep that key for good: alive to every sweep, its job never run
    again. The sweep gives such a key its lease, and does not
    drop the job's started entry as an earlier run's while nothing else runs it."""
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index)
    manage(env, "migrate", "--noinput")
    marker = tmp_path / "effect"
    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    job = enqueue_signed(queue, "tests.fixtures.sleep_then_mark", 3, str(marker))
    log_dir = tmp_path / "logs"
    with running(env, ["manage.py", "rqworker", "metrics"], log_dir=log_dir) as [first]:
        deadline = time.monotonic() + 60
        while job.get_status(refresh=True) != JobStatus.STARTED and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job.get_status() == JobStatus.STARTED, logs(log_dir)
        frozen = [first.pid, *children(first.pid)]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            job.refresh()
            assert redis_conn.persist(rq_compat.worker_key(job.worker_name))  # as an HSET after a FLUSHDB leaves it
            redis_conn.delete(rq_compat.worker_executions_key(job.worker_name))
            frozen_at = time.monotonic()
            with running(env, ["manage.py", "rqworker", "metrics"], log_dir=tmp_path / "second"):
                # The second worker's sweeps (at its start, then every 10 s): the lease given, 12 s,
                # then a sweep, then the 3 s job. Without the lease the job never ran again.
                deadline = frozen_at + LIVENESS_TTL + 35
                while job.get_status(refresh=True) != JobStatus.FINISHED and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert job.get_status() == JobStatus.FINISHED, (job.get_status(), logs(log_dir), logs(tmp_path / "second"))
        finally:
            for pid in frozen:
                with contextlib.suppress(ProcessLookupError):  # the second worker's sweep may have killed it (stopped here)
                    os.kill(pid, signal.SIGCONT)
        # The thawed copy is fenced: it had 3 s of work left and must not write (settled: tests/settle.py).
        settle(redis_conn, outbox_pending(env["DATABASE_URL"]))
        writers = {int(line) for line in marker.read_text().split()}
        assert len(marker.read_text().split()) == 1 and not writers & set(frozen), (marker.read_text(), frozen)


@pytest.mark.parametrize("lease", ["lapsed", "renewed"])
def test_an_in_process_worker_past_its_lease_records_no_success_before_its_fence_thread_runs(redis_conn: redis.Redis, monkeypatch, lease):
    """A pool member frozen as its job ends thaws after the job was re-sent and run elsewhere;
    its main thread could record the copy's success before the liveness thread wakes to fence it
    (the job recorded as succeeding twice). The
    thread about to record a success checks the lease itself. Here the liveness thread has not
    run since the thaw: the check alone must stop the record. (The real SIGSTOP of an in-process
    worker: test_a_worker_thawed_after_its_lease_does_not_finish_its_copy[in-process].)"""
    from rq.executions import Execution
    from rq.utils import now

    from app.queueing.workers import InProcessWorker

    def exit_now(code: int) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", exit_now)
    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    job = enqueue_signed(queue, "tests.fixtures.say_hello", "thawed")
    worker = InProcessWorker([queue], connection=redis_conn, name="thawed")
    worker.lease.pid = os.getpid()
    silent = LIVENESS_TTL + 7 if lease == "lapsed" else 1  # frozen 19 s, or a beat a second ago
    worker.lease.renewed_at = time.monotonic() - silent
    worker.lease.running_job_id = job.id
    job.started_at = job.ended_at = now()
    execution = Execution.create(job, 60, pipeline=redis_conn)
    if lease == "lapsed":
        with pytest.raises(SystemExit) as exited:
            worker.handle_job_success(job, queue, queue.started_job_registry, execution)
        assert exited.value.code == 75
        assert job.get_status(refresh=True) != JobStatus.FINISHED and job.latest_result() is None
    else:
        worker.handle_job_success(job, queue, queue.started_job_registry, execution)
        assert job.get_status(refresh=True) == JobStatus.FINISHED and job.latest_result() is not None
