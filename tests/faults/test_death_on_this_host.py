"""A worker whose process died on this host is dead at once, not when its key expires.

The key's TTL (LIVENESS_TTL) is the only death notice a worker on another host or in another
container gives. On the host where it ran, its process can be read: gone, a zombie, or its pid
taken by a newer process. The sweep then hands its job back at once; a stopped process, or one
of another kernel or pid namespace, is left to its lease as before (liveness.gone_here).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from rq import Queue, Worker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from app.queueing import keys, recovery, rq_compat
from app.queueing.liveness import LIVENESS_TTL, PROCESS_FIELD, gone_here, process_identity
from tests import redis_db
from tests.e2e.processes import logs, manage, running, stack_env
from tests.faults.test_lease_fence import children
from tests.signing import enqueue_signed


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def test_gone_here_reads_the_process_itself():
    child = _sleeper()
    identity = process_identity(child.pid)
    assert identity is not None and identity.split("/")[2] == str(child.pid)  # <boot>/<namespace>/<pid>/<start>
    try:
        assert not gone_here(identity)  # running
        os.kill(child.pid, signal.SIGSTOP)
        assert not gone_here(identity)  # stopped (a frozen container): alive, its lease decides
        os.kill(child.pid, signal.SIGCONT)
        where, _, started = identity.rpartition("/")
        assert gone_here(f"{where}/{int(started) + 1}")  # its pid now names a newer process
        boot, rest = identity.split("/", 1)
        assert not gone_here(f"00000000-0000-0000-0000-000000000000/{rest}")  # another kernel: not ours to judge
        namespace, rest = rest.split("/", 1)
        assert not gone_here(f"{boot}/pid:[1]/{rest}")  # another pid namespace (a container)
        assert not gone_here(None) and not gone_here("garbage")
        child.kill()
        time.sleep(0.2)
        assert gone_here(identity)  # a zombie: dead, though its parent has not reaped it yet
    finally:
        child.kill()
        child.wait()
    assert gone_here(identity)  # reaped: no such pid


def _abandoned_by(connection: redis.Redis, worker: str, identity: str | None) -> Job:
    """A started job whose worker `worker` still has a live key (as after a SIGKILL)."""
    queue = Queue("metrics", connection=connection, serializer=JSONSerializer)
    job = enqueue_signed(queue, "tests.fixtures.say_hello", "x")
    connection.lrem(rq_compat.queue_key("metrics"), 0, job.id)
    job.set_status(JobStatus.STARTED)
    job.worker_name = worker
    job.save()
    connection.hset(rq_compat.worker_key(worker), mapping={"state": "busy", **({PROCESS_FIELD: identity} if identity else {})})
    connection.expire(rq_compat.worker_key(worker), LIVENESS_TTL)
    connection.sadd(rq_compat.worker_executions_key(worker), f"{job.id}:exec1")
    connection.zadd(rq_compat.started_key("metrics"), {f"{job.id}:exec1": 9999999999})
    return job


def _sweep_after(connection: redis.Redis, worker: subprocess.Popen[bytes], state: str) -> list[str]:
    """One sweep with the job's worker process `state`: killed, stopped or alive."""
    try:
        if state == "stopped":
            os.kill(worker.pid, signal.SIGSTOP)
        elif state == "killed":
            worker.kill()
            worker.wait()
        return recovery.sweep(connection, ["metrics"])
    finally:
        worker.kill()
        worker.wait()


@pytest.mark.parametrize("state", ["killed", "stopped", "other host", "no identity"])
def test_the_sweep_hands_back_only_the_job_of_a_process_dead_here(redis_conn, state):
    child = _sleeper()
    identity = process_identity(child.pid)
    assert identity is not None
    if state == "other host":
        identity = "00000000-0000-0000-0000-000000000000/" + identity.split("/", 1)[1]
    job = _abandoned_by(redis_conn, "w1", None if state == "no identity" else identity)
    recovered = _sweep_after(redis_conn, child, "stopped" if state == "stopped" else "killed")
    assert redis_conn.exists(rq_compat.worker_key("w1"))  # its key has not expired
    if state == "killed":
        assert recovered == [job.id]
        assert job.get_status(refresh=True) == JobStatus.QUEUED
        assert redis_conn.lrange(rq_compat.queue_key("metrics"), 0, -1) == [job.id.encode()]
    else:  # not ours to judge: the key's TTL decides, as for any worker elsewhere
        assert recovered == []
        assert job.get_status(refresh=True) == JobStatus.STARTED


def test_workers_record_which_process_they_are(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis):
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index)
    log_dir = tmp_path / "logs"
    with running(env, ["manage.py", "rqworker", "metrics"], ["manage.py", "rqpool", "metrics", "--workers", "1"], log_dir=log_dir) as procs:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            fields = [redis_conn.hmget(worker.key, "pid", PROCESS_FIELD) for worker in Worker.all(connection=redis_conn)]
            recorded = {int(pid): identity for pid, identity in fields if identity}
            if len(recorded) == 2:
                break
            time.sleep(0.2)
        pool_member = children(procs[1].pid)
        assert set(recorded) == {procs[0].pid, *pool_member}, (recorded, logs(log_dir))
        assert all(identity.decode() == process_identity(pid) for pid, identity in recorded.items())


def test_a_pool_member_killed_mid_job_is_handed_back_at_once(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis):
    """The OOM killer takes a pool member mid-job: its pool hands the job back when it reaps the
    member, and the replacement member runs it, while the dead member's key still lives."""
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index)
    manage(env, "migrate", "--noinput")
    marker = tmp_path / "effect"
    job = enqueue_signed(Queue("metrics", connection=redis_conn, serializer=JSONSerializer), "tests.fixtures.sleep_then_mark", 30, str(marker))
    log_dir = tmp_path / "logs"
    with running(env, ["manage.py", "rqpool", "metrics", "--workers", "1"], log_dir=log_dir) as [pool]:
        deadline = time.monotonic() + 60
        while job.get_status(refresh=True) != JobStatus.STARTED and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job.get_status() == JobStatus.STARTED, logs(log_dir)
        job.refresh()
        first_worker = job.worker_name
        [member] = children(pool.pid)
        os.kill(member, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            job.refresh()
            if job.get_status() == JobStatus.STARTED and job.worker_name != first_worker:
                break
            assert time.monotonic() < deadline, logs(log_dir)
            time.sleep(0.1)
        # Re-run by the new member before the dead one's key expired: the pool knew, not the TTL.
        assert redis_conn.exists(rq_compat.worker_key(first_worker)), logs(log_dir)
        assert "died mid-job; handed back" in logs(log_dir)
        assert job.meta["abandoned"] == 1


def _runs_and_its_worker_dies(redis_conn, job, death: int):  # type: ignore[no-untyped-def]
    """The job runs (again) on worker `w<death>`, whose process is then seen dead on this host."""
    child = _sleeper()
    identity = process_identity(child.pid)
    child.kill()
    child.wait()
    worker = f"w{death}"
    if job is None:
        return _abandoned_by(redis_conn, worker, identity)
    assert redis_conn.lrem(rq_compat.queue_key("metrics"), 0, job.id) == 1  # requeued by the last sweep
    job.refresh()
    job.set_status(JobStatus.STARTED)
    job.worker_name = worker
    job.save()
    redis_conn.hset(rq_compat.worker_key(worker), mapping={"state": "busy", PROCESS_FIELD: identity})
    redis_conn.zadd(rq_compat.started_key("metrics"), {f"{job.id}:exec{death}": 9999999999})
    return job


@pytest.mark.django_db
def test_a_job_whose_workers_keep_dying_fails_after_the_abandon_limit(redis_conn):
    """A job that kills its worker (out of memory, a crash) is not re-run forever: the sweep
    requeues it MAX_ABANDONS times, then fails it with a reason that says so."""
    from app.queueing.models import BackgroundJob

    job = None
    for death in range(1, recovery.MAX_ABANDONS + 2):
        job = _runs_and_its_worker_dies(redis_conn, job, death)
        if death == 1:  # its outbox row, as every enqueue writes one
            BackgroundJob.objects.create(id=job.id, queue="metrics", func=job.func_name)
        recovered = recovery.sweep(redis_conn, ["metrics"])
        if death <= recovery.MAX_ABANDONS:
            assert recovered == [job.id] and job.get_status(refresh=True) == JobStatus.QUEUED
    assert recovered == []
    assert job.get_status(refresh=True) == JobStatus.FAILED
    failed = Queue("metrics", connection=redis_conn, serializer=JSONSerializer).failed_job_registry
    assert job.id in failed.get_job_ids()
    assert f"its worker died {recovery.MAX_ABANDONS + 1} times" in job.latest_result().exc_string
    row = BackgroundJob.objects.get(pk=job.id)  # closed at once, not when the reconciler reads Redis
    assert row.state == BackgroundJob.State.FAILED and row.failure_reason.startswith("AbandonedJobError")


@pytest.mark.django_db
def test_a_job_that_moves_on_between_its_workers_deaths_is_not_failed_by_the_limit(redis_conn):
    """A bulk mail batch whose pool is killed six times while it sends must not fail with
    AbandonedJobError and leave its remaining recipients without mail. A job that
    reported progress since its last abandon is no crash loop: its count starts again."""
    job = None
    for death in range(1, recovery.MAX_ABANDONS + 3):
        job = _runs_and_its_worker_dies(redis_conn, job, death)
        redis_conn.set(keys.progress(job.id), death * 10)  # it sent ten more mails before this death
        assert recovery.sweep(redis_conn, ["metrics"]) == [job.id]
        assert job.get_status(refresh=True) == JobStatus.QUEUED
    job.refresh()
    assert job.meta["abandoned"] == 1


@pytest.mark.parametrize("worker", ["dead", "alive"])
def test_a_retry_cut_off_between_rqs_two_writes_goes_back(redis_conn, worker):
    """RQ 3.0's Job.retry writes the status SCHEDULED at once, then the failure's pipeline
    schedules the retry and drops the started entry. A worker killed in between left a job that
    said scheduled, in no scheduled registry, its started entry still there: every other check
    reads it as held until the entry expires. Its worker dead, the sweep takes it back."""
    child = _sleeper()
    identity = process_identity(child.pid)
    job = _abandoned_by(redis_conn, "w1", identity)
    job.set_status(JobStatus.SCHEDULED)  # RQ's first write; the pipeline never ran
    recovered = _sweep_after(redis_conn, child, "killed" if worker == "dead" else "alive")
    if worker == "dead":
        assert recovered == [job.id]
        assert job.get_status(refresh=True) == JobStatus.QUEUED
        assert redis_conn.lrange(rq_compat.queue_key("metrics"), 0, -1) == [job.id.encode()]
        assert redis_conn.zcard(rq_compat.started_key("metrics")) == 0
    else:  # still between its two writes: a millisecond on a live worker
        assert recovered == []
        assert job.get_status(refresh=True) == JobStatus.SCHEDULED
