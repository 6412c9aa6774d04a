"""Busy and retrying work in sight: what each worker runs now, which jobs wait for another attempt.

Read by both dashboards (dashboard.py's workers page, the django-rq pages' `work_in_sight` tag),
`manage.py failedjobs`, `/healthz` (health.py) and `/metrics` (monitoring.py), so they all say
the same thing:

- `workers(connection)`: every registered worker with its state (shown `suspended` while the
  suspension flag is set: no worker starts a job then, worker/suspension.py), its current job
  (id, function, started at), its processed counts, and the pool it belongs to (a pool member
  records its pool in its hash at birth: worker/process_identity.py).
- `retrying_jobs(connection)`: jobs that failed an attempt and wait for the next one, with the
  next attempt's number n of N (outcomes.attempt_number, the one numbering), the next run (the scheduled
  registry's score; none when it waits in the queue itself) and the last error's line.

Everything here is read from Redis and so untrusted: jobs are fetched through the JSON-only
QueueingJob (no code chosen by a hash), fields are coerced to plain str/int/float, and the pages
escape them (Jinja's and Django's autoescape).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq.job import Job, JobStatus
from rq.suspension import is_suspended

from . import catalog, outcomes, rq_compat
from .jobclass import QueueingJob
from .liveness import POOL_FIELD
from .serialization import JobSerializer

logger = logging.getLogger(__name__)

# At most this many jobs of each queue's scheduled registry and of its head are read per call:
# the pages and /metrics stay cheap however long a backlog grows (a count above it is a floor).
SCAN_LIMIT = 200
MAX_ERROR_CHARS = 300


def _text(value: Any, limit: int = 200) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value if value is not None else "")[:limit]


def last_error_line(errors: list[dict[str, Any]]) -> str:
    """The last failure's reason: its traceback's last line (outcomes.errors_of(job), untrusted)."""
    return outcomes.one_line(_text(errors[-1].get("traceback"), 10_000))[:MAX_ERROR_CHARS] if errors else ""


@dataclass(frozen=True)
class RetryingJob:
    id: str
    func: str
    queue: str
    attempt: int  # the next attempt's number (1 is the first run)
    attempts: int  # how many attempts it gets in all
    next_run: datetime | None  # None: back in its queue, runs when a worker takes it
    last_error: str

    @property
    def attempt_label(self) -> str:
        return f"{self.attempt}/{self.attempts}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "func": self.func,
            "queue": self.queue,
            "attempt": self.attempt,
            "attempts": self.attempts,
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "last_error": self.last_error,
        }


def retry_state(job: Job, next_run: datetime | None = None) -> RetryingJob | None:
    """The job's retry state, or None if it has not failed an attempt or is not waiting for another."""
    errors = outcomes.errors_of(job)  # the meta read as untrusted data (non-dict entries dropped)
    if not errors:
        return None
    if job.get_status(refresh=False) not in (JobStatus.SCHEDULED, JobStatus.QUEUED):
        return None
    declared = job.meta.get("max_retries")
    if not isinstance(declared, int) or isinstance(declared, bool) or declared < 0:
        return None  # a hand-written meta: not something to count on
    return RetryingJob(
        id=_text(job.id),
        func=_text(job.func_name),
        queue=_text(job.origin),
        attempt=outcomes.attempt_number(job),
        attempts=outcomes.max_attempts(job),
        next_run=next_run,
        last_error=last_error_line(errors),
    )


def next_run_of(job: Job) -> datetime | None:
    """When the scheduled registry runs the job next (its score), None if it is not there."""
    score = job.connection.zscore(rq_compat.scheduled_key(_text(job.origin)), job.id)
    return datetime.fromtimestamp(float(score), tz=UTC) if score is not None else None


def retrying_jobs(connection: Redis, queue_names: list[str] | None = None) -> list[RetryingJob]:
    """Jobs waiting for another attempt, soonest next run first (those back in a queue first of all)."""
    names = list(queue_names) if queue_names is not None else list(catalog.queues())
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.zrange(rq_compat.scheduled_key(name), 0, SCAN_LIMIT - 1, withscores=True)
            pipe.lrange(rq_compat.queue_key(name), 0, SCAN_LIMIT - 1)
        answers = pipe.execute()
    wanted: list[tuple[str, float | None]] = []
    for index in range(len(names)):
        wanted += [(_text(job_id), score) for job_id, score in answers[2 * index]]
        wanted += [(_text(job_id), None) for job_id in answers[2 * index + 1]]
    if not wanted:
        return []
    jobs = QueueingJob.fetch_many([job_id for job_id, _ in wanted], connection=connection, serializer=JobSerializer)
    found: list[RetryingJob] = []
    for (_, score), job in zip(wanted, jobs, strict=True):
        if job is None:
            continue
        next_run = datetime.fromtimestamp(score, tz=UTC) if score is not None else None
        state = retry_state(job, next_run)
        if state is not None:
            found.append(state)
    found.sort(key=lambda row: (row.next_run is not None, row.next_run or datetime.min.replace(tzinfo=UTC)))
    return found


def retrying_by_function(rows: list[RetryingJob]) -> dict[tuple[str, str], int]:
    """(function, queue) -> how many of its jobs wait for another attempt."""
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        counts[(row.func, row.queue)] = counts.get((row.func, row.queue), 0) + 1
    return counts


@dataclass(frozen=True)
class WorkerView:
    name: str
    state: str  # RQ's state, or `suspended` while the suspension flag is set
    queues: list[str]
    pool: str  # "" for a worker of its own
    job_id: str
    job_func: str
    job_since: datetime | None
    successful: int
    failed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "queues": self.queues,
            "pool": self.pool,
            "current_job": {"id": self.job_id, "func": self.job_func, "since": self.job_since.isoformat() if self.job_since else None}
            if self.job_id
            else None,
            "successful": self.successful,
            "failed": self.failed,
        }


@dataclass
class WorkersInSight:
    suspended: bool
    workers: list[WorkerView] = field(default_factory=list)

    @property
    def pools(self) -> dict[str, list[WorkerView]]:
        """Pool name -> its members ("" gathers the workers of their own), pools first."""
        grouped: dict[str, list[WorkerView]] = {}
        for worker in sorted(self.workers, key=lambda w: (w.pool == "", w.pool, w.name)):
            grouped.setdefault(worker.pool, []).append(worker)
        return grouped

    def pool_rows(self) -> list[dict[str, Any]]:
        """One row per pool (and one for the workers of their own): members and processed counts."""
        return [
            {
                "pool": pool,
                "members": members,
                "successful": sum(member.successful for member in members),
                "failed": sum(member.failed for member in members),
            }
            for pool, members in self.pools.items()
        ]

    def as_dict(self) -> dict[str, Any]:
        return {"suspended": self.suspended, "workers": [worker.as_dict() for worker in self.workers]}


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _int(value: Any) -> int:
    try:
        return int(_text(value) or 0)
    except ValueError:
        return 0


def workers(connection: Redis) -> WorkersInSight:
    """Every registered worker of the project's queues, read in two round trips and one fetch."""
    suspended = bool(is_suspended(connection))
    names = list(catalog.queues())
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.smembers(rq_compat.workers_of_queue_key(name))
        sets = pipe.execute()
    keys = sorted({_text(key) for members in sets for key in members})
    keys = [key for key in keys if rq_compat.is_worker_key(key)]
    fields = ("state", "queues", "successful_job_count", "failed_job_count", POOL_FIELD)
    with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hmget(key, fields)
            # rq 3.0 keeps a worker's running job in its executions set, `<job id>:<execution id>`.
            pipe.smembers(rq_compat.worker_executions_key(key.rsplit(":", 1)[-1]))
        answers = pipe.execute()
    rows = []
    for key, values, executions in zip(keys, answers[0::2], answers[1::2], strict=True):
        data = dict(zip(fields, values, strict=True))
        if data["state"] is None:
            continue  # expired: a dead worker
        running = sorted(rq_compat.started_entry_job_id(entry) for entry in executions)
        data["current_job"] = running[0] if running else None
        rows.append((key, data))
    job_ids = [_text(data["current_job"]) for _, data in rows if data["current_job"]]
    jobs = {job.id: job for job in QueueingJob.fetch_many(job_ids, connection=connection, serializer=JobSerializer) if job is not None} if job_ids else {}
    views = []
    for key, data in rows:
        job_id = _text(data["current_job"])
        job = jobs.get(job_id)
        state = _text(data["state"], 40)
        if suspended and state in ("idle", "suspended", "started"):
            state = "suspended"  # idle or waiting in its dequeue: it will not start a job (worker/suspension.py)
        views.append(
            WorkerView(
                name=key.rsplit(":", 1)[-1],
                state=state,
                queues=[queue for queue in _text(data["queues"], 1000).split(",") if queue],
                pool=_text(data[POOL_FIELD]),
                job_id=job_id,
                job_func=_text(job.func_name) if job is not None else "",
                job_since=_aware(job.started_at) if job is not None else None,
                successful=_int(data["successful_job_count"]),
                failed=_int(data["failed_job_count"]),
            )
        )
    return WorkersInSight(suspended=suspended, workers=views)
