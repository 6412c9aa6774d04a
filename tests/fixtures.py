"""Test jobs, importable by worker subprocesses (like rq's own tests/fixtures.py)."""

from __future__ import annotations

import os
import signal
import threading
import time

from app.queueing import Retries, TransientJobError, job

# Declared like the platform's own jobs (on `metrics`), or no worker would run them.


@job("metrics")
def say_hello(name: str = "world") -> str:
    return f"hello {name}"


@job("metrics")
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@job("metrics")
def which_process() -> int:
    return os.getpid()


@job("metrics")
def allocate_mb(megabytes: int) -> int:
    global _ballast
    _ballast = bytearray(megabytes * 1024 * 1024)  # kept alive: the worker's RSS grows
    return megabytes


_ballast = b""


@job("metrics")
def lose_own_job_data() -> str:
    """What a FLUSHDB or a failover does to a running job: its hash in Redis is gone."""
    from rq import get_current_job

    job = get_current_job()
    assert job is not None
    job.connection.delete(job.key)
    return "ran"


@job("metrics", retries=Retries(0))
def die_like_the_oom_killer() -> None:
    """The kernel's OOM killer, a segfault in a C extension: the process ends with no exception."""
    os.kill(os.getpid(), signal.SIGKILL)


@job("metrics")
def succeed_then_lose_the_database() -> str:
    """Done, then the database is out of reach when the worker writes the end (a restart, a
    failover): the connection is pointed, in this process only, at a database that does not exist
    (SQLite cannot open it, PostgreSQL refuses it), so the write meets a real driver error."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = "/nonexistent/egoejo.sqlite3"
    return "done"


@job("metrics")
def echo_call(*args: object, **kwargs: object) -> dict[str, object]:
    return {"args": list(args), "kwargs": kwargs}


@job("metrics")
def fail_permanently(reason: str = "bad input") -> None:
    from app.queueing import PermanentJobError

    raise PermanentJobError(reason)


@job("metrics")
def fail_transiently(reason: str = "try later") -> None:
    raise TransientJobError(reason)


def not_declared(path: str) -> None:
    """Importable but undeclared: a job naming it must never run it."""
    with open(path, "w") as marker:
        marker.write("ran")


def on_success_undeclared(job, connection, result, *args, **kwargs):  # type: ignore[no-untyped-def]
    not_declared(job.meta["marker"])


@job("metrics")
def sleep_then_mark(seconds: float, path: str) -> str:
    """An effect after some work: a copy that goes on after its lease lapsed would write the file.
    The work is counted in steps, not wall time, so a frozen process still has it left when it thaws."""
    for _ in range(int(seconds * 10)):
        time.sleep(0.1)
    with open(path, "a") as marker:
        marker.write(f"{os.getpid()}\n")
    return path


@job("metrics", timeout=1)
def swallow_timeout(seconds: float) -> float:
    """A retry loop that catches everything, RQ's timeout included: it runs on past its timeout."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.1)
        except Exception:  # noqa: BLE001, S110 - the bug this fixture stands for
            pass
    return seconds


def _stalling_worker_class() -> type:
    from app.queueing.workers import ForkingWorker

    class WorkLoopStalls(ForkingWorker):
        """Registered, its liveness thread beating, its work loop stuck (any stuck lock or socket
        looks the same from outside)."""

        def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> None:
            self.heartbeat()
            threading.Event().wait()  # nothing ends this wait

    return WorkLoopStalls


def __getattr__(name: str) -> type:
    # Built on first use, not at import: this module is imported by settings-less tooling too.
    if name == "WorkLoopStalls":
        return _stalling_worker_class()
    raise AttributeError(name)


class SlowToDescribe(TransientJobError):
    """A transient error whose text takes seconds to build: while RQ logs it and runs its
    exception handlers, the worker sits after the job's run and before RQ records the retry."""

    def __str__(self) -> str:
        reason, marker = self.args
        with open(marker, "a") as out:
            out.write(f"{os.getpid()}\n")
        time.sleep(3)
        return str(reason)


@job("metrics")
def fail_slowly_to_describe(marker: str) -> None:
    raise SlowToDescribe("try later", marker)


# Standard tasks (Django's task API, django_tasks): declared by @task on a declared queue.
from django_tasks import TaskContext, task  # noqa: E402


@task(queue_name="metrics")
def add_numbers(a: int, b: int) -> int:
    return a + b


@task(queue_name="metrics", takes_context=True)
def attempt_seen(context: TaskContext, fail_until: int = 0) -> int:
    """Fails (transiently) until its attempt number reaches `fail_until`; returns the attempt."""
    if context.attempt < fail_until:
        raise TransientJobError(f"attempt {context.attempt} fails")
    return context.attempt


@task(queue_name="metrics")
async def add_later(a: int, b: int) -> int:
    return a + b


@task(queue_name="metrics", takes_context=True)
def count_runs(context: TaskContext, path: str, seconds: float) -> int:
    """Writes `started <attempt>` to `path`, sleeps, then `done <attempt>`: how often it ran, and how far."""
    with open(path, "a") as log:
        log.write(f"started {context.attempt}\n")
    time.sleep(seconds)
    with open(path, "a") as log:
        log.write(f"done {context.attempt}\n")
    return context.attempt


@job("metrics", retries=Retries(2, base=30, cap=60))
def fail_until_attempt(path: str, succeed_at: int) -> int:
    """Counts its attempts in `path`; transient failures until attempt `succeed_at`."""
    with open(path, "a") as marker:
        marker.write("x")
    with open(path) as marker:
        attempt = len(marker.read())
    if attempt < succeed_at:
        raise TransientJobError(f"attempt {attempt}")
    return attempt


@job("metrics", retries=Retries(3, base=30, cap=60))
def fail_permanently_once(path: str) -> int:
    """A permanent failure on its first run (an operator then fixes the cause and requeues it), a success after."""
    from app.queueing import PermanentJobError

    with open(path, "a") as marker:
        marker.write("x")
    with open(path) as marker:
        runs = len(marker.read())
    if runs == 1:
        raise PermanentJobError("the row is not there yet")
    return runs


@job("metrics", owner="user_id", retries=Retries(0))
def fail_for_member(user_id: int, words_for_members: bool) -> None:
    """A member's job that fails: with words meant for the member (PermanentJobError), or a bug's."""
    from app.queueing import PermanentJobError

    if words_for_members:
        raise PermanentJobError("that file is not an image")
    raise KeyError("internal_secret_column")
