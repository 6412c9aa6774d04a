"""Queue a batch of jobs of one function the way RQ's enqueue_many does, for a third of its cost.

RQ builds a Job object per job and serialises all of its ~20 fields (`Job.to_dict()`), then
sends three commands per job: HSET status, HSET of the whole hash, RPUSH of the id. For a
fan-out (a mail to every member, a refresh of every dashboard) that is ~100 µs per job, most of
it Python: RQ's own enqueue_many did 11,000–17,000 jobs/s here.

Within a batch of one function on one queue only three fields differ between jobs: the call's
arguments (`data`), the description and the drawn retry intervals. So RQ builds the first job,
exactly as enqueue_many would (create_job, _prepare_for_queue, to_dict), and the others are
copies of that hash with those three fields replaced: one HSET per job and one RPUSH of all the
ids, in the caller's MULTI/EXEC. The jobs of a batch share the first job's created_at and
enqueued_at (they are committed together). tests/test_job_hashes.py checks, field by field, that
the hashes are the ones RQ's enqueue_many writes, so a change of RQ's job format fails there.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rq.job import validate_job_id

if TYPE_CHECKING:
    from redis.client import Pipeline
    from rq import Queue

    from app.jobs.dispatch import Push

# The only fields of RQ's job hash that depend on the call rather than on the function and queue.
PER_CALL_FIELDS = frozenset({"data", "description", "retry_intervals"})


def queue_jobs(pipe: Pipeline, queue: Queue, pushes: Sequence[Push]) -> None:
    """Add `pushes` (one function, one queue, distinct ids) to `pipe` as queued RQ jobs."""
    from app.jobs.queues import describe, job_options

    ids = [push.job_id for push in pushes]
    if len(set(ids)) != len(ids):  # one hash written twice, its id queued twice; RQ refuses it too
        raise ValueError("the same job id appears more than once in one batch")
    for job_id in ids:  # RQ checks only the job it builds; a ':' would confuse its registries
        validate_job_id(job_id)
    first = pushes[0]
    spec, path = first.spec, first.path
    if not queue.is_async:
        # "ASYNC": False, a debugging setting: RQ runs each job at once. One by one: RQ's
        # enqueue_many would write each job's queued status after the job had finished.
        for push in pushes:
            queue.enqueue_call(path, args=push.args, kwargs=push.kwargs, **job_options(spec, push.job_id, path, push.args))
        return
    job = queue.create_job(path, args=first.args, kwargs=first.kwargs, **job_options(spec, first.job_id, path, first.args))
    queue._prepare_for_queue(job)  # origin, enqueued_at, timeout, status: what RQ sets before saving
    if job.ttl or job._dependency_ids or job.repeats_left is not None or job.rate_limit_key:
        # RQ would also expire keys, register dependencies, schedule repeats or take a rate-limit
        # slot for such a job; the copies below would skip that. Not used by any queue here.
        raise ValueError(f"{path}: a job with a ttl, dependencies, repeats or a rate limit needs RQ's own enqueue")
    template = job.to_dict()
    retries = "retry_intervals" in template
    dumps = job.serializer.dumps
    key_for = queue.job_class.key_for

    pipe.sadd(queue.redis_queues_keys, queue.key)
    pipe.hset(job.key, mapping=template)
    for push in pushes[1:]:
        mapping = template.copy()
        mapping["data"] = zlib.compress(dumps((path, None, push.args, push.kwargs)))
        mapping["description"] = describe(path, push.args)
        if retries:
            mapping["retry_intervals"] = json.dumps(spec.retry_intervals())
        pipe.hset(key_for(push.job_id), mapping=mapping)
    pipe.rpush(queue.key, *ids)
