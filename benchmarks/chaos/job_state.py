"""Where Redis holds one job, in one line: what the campaign records of a job that does not
move on (a pending row at the end of a seed, an abandoned job not re-run after 10 s)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis

from app.queueing import rq_compat
from app.queueing.keys import running as running_key
from app.queueing.liveness import PROCESS_FIELD

if TYPE_CHECKING:
    from .stack import ChaosStack


def describe(client: Any, job_id: str, queue: str | None = None) -> str:
    """The job's hash fields, every list, registry and claim that holds it, and its worker's key."""
    fields = client.hmget(rq_compat.job_key(job_id), "status", "worker_name", "origin", "retries_left", "started_at", "ended_at")
    status, worker = fields[0], fields[1]
    queue = queue or (fields[2].decode() if fields[2] else "?")
    held = [
        where for where, found in (
            ("queue", client.lpos(rq_compat.queue_key(queue), job_id) is not None),
            ("intermediate", client.lpos(rq_compat.intermediate_key(queue), job_id) is not None),
            ("scheduled", client.zscore(rq_compat.scheduled_key(queue), job_id) is not None),
            ("claim", bool(client.exists(running_key(job_id)))),
        ) if found
    ]
    held += [f"started {entry.decode()}" for entry in client.zrange(rq_compat.started_key(queue), 0, -1)
             if rq_compat.started_entry_job_id(entry) == job_id]
    about_worker = "has no key"
    if worker and client.exists(rq_compat.worker_key(worker.decode())):
        name = worker.decode()
        key = rq_compat.worker_key(name)
        # A key without a TTL (-1) never expires by itself; its executions are what a sweep reads.
        executions = sorted(e.decode() for e in client.smembers(rq_compat.worker_executions_key(name)))
        about_worker = (f"has a key (TTL {client.ttl(key)} s, state {client.hget(key, 'state')!r}, "
                        f"process {client.hget(key, PROCESS_FIELD)!r}, executions {executions})")
    return (f"{job_id} on {queue}: hash {[f.decode() if f else None for f in fields]}; held by {held or 'nothing'}; "
            f"its worker {about_worker}" + ("" if status else " (no hash)"))


def unfinished_jobs(stack: ChaosStack) -> str:
    """For a seed that never became quiescent: where Redis holds each pending row's job, read
    before the seed's Redis is gone (the sixth goal run's seed 23 left one job unexplained)."""
    lines = []
    pending = stack.sql("SELECT id, queue, func FROM egoejo_backgroundjob WHERE state = 'pending' ORDER BY id LIMIT 20")
    try:
        client = stack.redis_client()
        for job_id, queue, func in pending:
            lines.append(f"{func}: {describe(client, job_id, queue)}")
    except redis.RedisError as exc:
        lines.append(f"Redis could not be read: {exc}")
    return "\n".join(lines)
