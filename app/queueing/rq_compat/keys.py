"""RQ 3.0's key formats: the names of the Redis keys the sweeps, the reconciler and the pages read.

tests/test_rq_compat.py (test_the_key_formats_are_rqs_own) checks each against the key RQ's own
objects use.
"""

from __future__ import annotations

from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.queue import Queue
from rq.suspension import WORKERS_SUSPENDED
from rq.worker import Worker
from rq.worker_registration import WORKERS_BY_QUEUE_KEY


def job_key(job_id: str) -> str:
    return Job.redis_job_namespace_prefix + job_id


def queue_key(name: str) -> str:
    return f"rq:queue:{name}"


def intermediate_key(name: str) -> str:
    return IntermediateQueue.get_intermediate_queue_key(queue_key(name))


def started_key(name: str) -> str:
    return f"rq:wip:{name}"


def failed_key(name: str) -> str:
    return f"rq:failed:{name}"


def scheduled_key(name: str) -> str:
    return f"rq:scheduled:{name}"


SUSPENDED_KEY = WORKERS_SUSPENDED  # set by `rqsuspend` (RQ's suspend()), read by every worker before a job starts

ALL_QUEUES_KEY = Queue.redis_queues_keys  # the set of every queue's key, read by RQ's Queue.all()


def is_worker_key(key: str) -> bool:
    """Whether `key` names a worker's hash (not, say, a job's or a queue's)."""
    return key.startswith(Worker.redis_worker_namespace_prefix)


def worker_key(name: str) -> str:
    return f"rq:worker:{name}"


def worker_executions_key(name: str) -> str:
    """The set of a worker's running executions, members `<job id>:<execution id>` like the started registry's."""
    return WORKER_EXECUTIONS_KEY_TEMPLATE.format(name)


def workers_of_queue_key(name: str) -> str:
    return WORKERS_BY_QUEUE_KEY % name


def started_entry_job_id(entry: bytes | str) -> str:
    """A StartedJobRegistry member is `<job id>:<execution id>` in rq 3.0."""
    text = entry.decode() if isinstance(entry, bytes) else entry
    return text.split(":", 1)[0]
