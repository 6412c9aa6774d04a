"""A worker frozen past its lease (SIGSTOP: a paused container, a VM stall) must not finish its
copy of the job once it thaws: the job was requeued elsewhere meanwhile (the fence, liveness.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from app.queueing.liveness import LIVENESS_TTL
from tests import redis_db
from tests.e2e.processes import logs, manage, running, stack_env

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
    job = Queue("metrics", connection=redis_conn, serializer=JSONSerializer).enqueue("tests.fixtures.sleep_then_mark", 4, str(marker))
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
        time.sleep(8)  # the frozen copy had 4 s of work left: it would have written by now
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
