"""Recover jobs whose worker died mid-job: requeue them within seconds of the death.

A job in a queue's StartedJobRegistry whose worker has no live key (see
app/jobs/resilience.py: keys of dead workers expire within LIVENESS_TTL) is put back at the
front of its queue. A job that keeps killing its workers (say, out of memory) is failed with
a readable reason after MAX_ABANDONS, instead of taking worker after worker down.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from app.services.job_metrics import ABANDONED_REQUEUES_KEY

from .runtime import JSONJob

logger = logging.getLogger("app.jobs.abandoned")

MAX_ABANDONS = 3
LOCK_KEY = "egoejo:abandoned-sweep"


def sweep(connection: Redis, queue_names: list[str]) -> list[str]:
    """Requeue (or finally fail) started jobs whose worker is gone; returns their ids."""
    from app.jobs.queues import QUEUES, get_queue

    if not connection.set(LOCK_KEY, 1, nx=True, ex=5):
        return []  # another process is sweeping right now
    recovered: list[str] = []
    try:
        for name in queue_names:
            registry = StartedJobRegistry(name, connection=connection, job_class=JSONJob, serializer=JSONSerializer)
            for entry in connection.zrange(registry.key, 0, -1):
                entry = entry.decode()
                job_id = entry.split(":", 1)[0]
                job = JSONJob.fetch_many([job_id], connection=connection, serializer=JSONSerializer)[0]
                if job is None:
                    continue
                status = job.get_status(refresh=False)
                if status != JobStatus.STARTED:
                    # An entry left behind by a run that was cut off by a Redis outage. A job
                    # that says QUEUED but sits in no queue would wait forever: requeue it.
                    # Only after two sightings 10 s apart: a worker that listens on several
                    # queues pops with BLPOP, so between that pop and marking the job STARTED a
                    # healthy job is briefly "queued" in no queue, too.
                    if (
                        status == JobStatus.QUEUED
                        and name in QUEUES
                        and not _waiting(connection, name, job_id)
                        and _stuck_for_a_while(connection, job_id)
                    ):
                        connection.zrem(registry.key, entry)
                        get_queue(QUEUES[name])._enqueue_job(job, at_front=True)
                        logger.warning("job %s was queued in no queue: requeued", job_id)
                        recovered.append(job_id)
                    continue
                if job.worker_name and connection.exists(f"rq:worker:{job.worker_name}"):
                    continue  # its worker is alive and working on it
                connection.zrem(registry.key, entry)
                abandons = int(job.meta.get("abandoned", 0)) + 1
                job.meta["abandoned"] = abandons
                job.save_meta()
                queue = get_queue(QUEUES[name]) if name in QUEUES else None
                if queue is None:
                    continue
                if abandons > MAX_ABANDONS:
                    reason = f"AbandonedJobError: its worker died {abandons} times while running it; not retried again"
                    with connection.pipeline() as pipe:
                        job.set_status(JobStatus.FAILED, pipeline=pipe)
                        FailedJobRegistry(name, connection=connection, serializer=JSONSerializer).add(
                            job, ttl=job.failure_ttl, exc_string=reason, pipeline=pipe
                        )
                        pipe.execute()
                    from app.services import background_jobs

                    background_jobs.mark_ended(job.id, failed=True, reason=reason)
                    logger.error("job %s failed: %s", job.id, reason)
                    continue
                queue._enqueue_job(job, at_front=True)
                connection.hincrby(ABANDONED_REQUEUES_KEY, name, 1)  # for the alert on requeues
                logger.warning(
                    "job %s (%s) was abandoned by dead worker %s: requeued (%d/%d)",
                    job.id, job.func_name, job.worker_name, abandons, MAX_ABANDONS,
                )
                recovered.append(job.id)
        for name in queue_names:
            recovered.extend(_requeue_stuck_in_intermediate(connection, name))
    finally:
        connection.delete(LOCK_KEY)
    return recovered


STUCK_AFTER_SECONDS = 10


def _stuck_for_a_while(connection: Redis, job_id: str) -> bool:
    """True from the second sighting at least STUCK_AFTER_SECONDS after the first one."""
    seen_key = f"egoejo:stuck-seen:{job_id}"
    if connection.set(seen_key, 1, nx=True, ex=STUCK_AFTER_SECONDS * 6):
        return False  # first sighting: give the worker time to register it
    if connection.ttl(seen_key) > STUCK_AFTER_SECONDS * 5:
        return False  # first seen less than 10 s ago
    connection.delete(seen_key)
    return True


def orphaned(connection: Redis, name: str, job_id: str) -> bool:
    """A QUEUED job in no queue list, no intermediate list and no started registry, seen so twice."""
    if _waiting(connection, name, job_id):
        return False
    started_key = StartedJobRegistry(name, connection=connection, serializer=JSONSerializer).key
    if any(m.decode().split(":", 1)[0] == job_id for m in connection.zrange(started_key, 0, -1)):
        return False
    return _stuck_for_a_while(connection, job_id)


def _waiting(connection: Redis, name: str, job_id: str) -> bool:
    from rq.intermediate_queue import IntermediateQueue

    queue_key = f"rq:queue:{name}"
    return any(
        connection.lpos(key, job_id) is not None
        for key in (queue_key, IntermediateQueue.get_intermediate_queue_key(queue_key))
    )


def _requeue_stuck_in_intermediate(connection: Redis, name: str) -> list[str]:
    """RQ 3 moves a dequeued job to `<queue>:intermediate` before registering it as started.

    A worker that dies (or loses Redis) between the two leaves the job there, still QUEUED;
    RQ's own cleanup fails it after a minute. A healthy hand-over takes milliseconds, so a
    queued job seen there in two sweeps 10 s apart goes back to the front of its queue.
    """
    from rq.intermediate_queue import IntermediateQueue

    queue_key = f"rq:queue:{name}"
    intermediate_key = IntermediateQueue.get_intermediate_queue_key(queue_key)
    requeued = []
    for raw in connection.lrange(intermediate_key, 0, -1):
        job_id = raw.decode()
        job = JSONJob.fetch_many([job_id], connection=connection, serializer=JSONSerializer)[0]
        if job is None or job.get_status(refresh=False) != JobStatus.QUEUED:
            continue
        if not _stuck_for_a_while(connection, job_id):
            continue
        with connection.pipeline() as pipe:
            pipe.lrem(intermediate_key, 1, job_id)
            pipe.lpush(queue_key, job_id)
            pipe.execute()
        logger.warning("job %s (%s) was stuck between dequeue and start: requeued", job_id, job.func_name)
        requeued.append(job_id)
    return requeued
