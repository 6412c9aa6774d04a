"""Every private name of rq, every overridden RQ method and every `rq:` key format: here alone.

Verified against rq 3.0.0 (requirements.txt pins it). On any other version, or with
QUEUEING_FAST_PATHS off (settings: RQ_FAST_PATHS=0), each fast path below falls back to RQ's own
code path and the reason is logged once. tests/test_rq_compat.py runs the same jobs through RQ's
path and through each fast path and compares every field and key in Redis; tests/test_layout.py
fails if any other module names an rq underscore attribute or an `rq:` key.

The fast paths:
- `push_if_absent`: a batch of one function on one queue is written from one RQ-built template by
  one Lua script (one HSET per job, one RPUSH), and only for jobs whose hash Redis does not hold:
  a push is never doubled. RQ's way: its own unique enqueue (`unique=True`), job by job.
- `FastInProcessMixin`: the in-process worker's per-job bookkeeping in 4 Redis round trips instead
  of RQ 3.0's 11 (execution record and start in one transaction; the worker's state only when it
  changes; at the end only the job's status and times, not the whole job again; heartbeat,
  statistics and a count of dependents inside RQ's own success MULTI/EXEC).
- `FastBeatsMixin`: heartbeats of one second coalesced, the suspension flag read once a second.
- `install_speedups`: RQ's serializer resolution remembered, its own timestamp format parsed with
  fromisoformat.

Not a fast path, always on in every process (`install_json_only`, from the app's ready()): RQ's
default serializer is pickle, and every reader that does not name a serializer (django-rq's
worker pages and "clear failed jobs", rq-dashboard's job actions, rq-scheduler) would unpickle
what Redis holds. Here RQ's default reads and writes JSON (`serialization.JobSerializer`), and a
job whose data is not a JSON call reads as a call of UNREADABLE_FUNC instead of raising.
tests/test_rq_compat.py pins both on RQ's own code paths.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import json
import logging
import os
import signal
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import rq
import rq.serializers
import rq.utils
from redis.exceptions import NoScriptError
from rq.exceptions import DeserializationError, DuplicateJobError, NoSuchJobError
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE, Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus, validate_job_id
from rq.rate_limit import release_slot
from rq.results import Result
from rq.utils import now, utcformat
from rq.worker.base import WorkerStatus
from rq.worker_registration import WORKERS_BY_QUEUE_KEY, unregister

from . import signing, stats
from .registry import Push, describe, job_meta, job_options
from .serialization import JobSerializer

if TYPE_CHECKING:
    from redis import Redis
    from rq.worker import BaseWorker as _WorkerBase
    from rq.worker import SimpleWorker as _SimpleWorkerBase
else:
    _WorkerBase = _SimpleWorkerBase = object

if TYPE_CHECKING:
    from redis import Redis
    from rq import Queue


logger = logging.getLogger(__name__)

VERIFIED_RQ_VERSION = "3.0.0"

_why_off: str | None = None
_why_logged = False


def fast_paths() -> bool:
    """True when the fast paths may run: the setting is on and rq is the verified version."""
    global _why_logged
    from django.conf import settings

    reason = _why_off
    if reason is None and not getattr(settings, "QUEUEING_FAST_PATHS", True):
        reason = "QUEUEING_FAST_PATHS is off (RQ_FAST_PATHS=0)"
    if reason is None:
        return True
    if not _why_logged:
        logger.warning("using RQ's own code paths: %s", reason)
        _why_logged = True
    return False


if rq.__version__ != VERIFIED_RQ_VERSION:
    _why_off = f"rq {rq.__version__} is not the {VERIFIED_RQ_VERSION} the fast paths were verified against"


# -- key formats --------------------------------------------------------------------------------


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


# -- queue operations RQ keeps private ----------------------------------------------------------


def requeue_at_front(queue: Queue, job: Job, pipeline: Any = None) -> None:
    """Put an existing job back at the front of its queue, status QUEUED (no dependency checks)."""
    queue._enqueue_job(job, pipeline=pipeline, at_front=True)


# What RQ 3.0's IntermediateQueue.cleanup passes to `worker.handle_job_failure` for an id it found
# in `<queue>:intermediate` for over a minute, whatever the job's status (rq/intermediate_queue.py).
_STUCK_IN_INTERMEDIATE = "Job was stuck in intermediate queue."


def is_intermediate_cleanup(exc_string: str) -> bool:
    """Whether a failure is RQ's intermediate-list cleanup rather than a failure of the job."""
    return exc_string == _STUCK_IN_INTERMEDIATE


def stop_requested(worker: Any) -> bool:
    return bool(worker._stop_requested)


def set_stop_requested(worker: Any, value: bool) -> None:
    worker._stop_requested = value


def return_value_of(job: Job) -> Any:
    """What the job's function returned, in the worker that just ran it (RQ keeps it on the job)."""
    return job._result


def callback_names(job: Job) -> list[str | None]:
    """The import paths of a job's callbacks, read without importing them."""
    return [job._success_callback_name, job._failure_callback_name, job._stopped_callback_name]


def retire_worker(worker: Any) -> None:
    """Take a worker's registration out of Redis at once (its key, its executions, the sets that
    list it), without RQ's register_death, which keeps the key 60 s: a name given up must read as
    dead now, so that what it was running is recovered as abandoned now."""
    with worker.connection.pipeline() as pipe:
        unregister(worker, pipeline=pipe)
        pipe.delete(worker.key, worker_executions_key(worker.name))
        pipe.execute()


def stop_scheduler_child(worker: Any) -> None:
    """Kill a worker's RQ scheduler child, then release the per-queue locks it held (by its name).

    Killed, not asked to stop: a child that outlived a Redis outage could otherwise still run a
    move of due jobs it prepared before, after another scheduler took the queue (a job moved
    twice can run twice). Its locks, left alone, would keep the worker's next scheduler (a new
    name) from its queues for 61 s.
    """
    scheduler = worker.scheduler
    if scheduler is None:
        return
    process = scheduler._process
    if process is not None and process.pid:
        try:
            os.kill(process.pid, signal.SIGKILL)
        except OSError:
            pass
        process.join(2)
    scheduler.release_locks()


def forget_worker_state(worker: Any) -> None:
    """After a worker takes a new name, what the mixins remember of the old key is void."""
    worker._compat_state_sent = None
    worker._compat_last_heartbeat = None


# -- pushing jobs -------------------------------------------------------------------------------

# The only fields of RQ's job hash that depend on the call rather than on the function and queue
# (meta: it carries the job's signature, signing.py).
PER_CALL_FIELDS = ("data", "description", "retry_intervals", "meta")

_PUSH_SCRIPT = """
-- KEYS[1] queue list, KEYS[2] RQ's set of queues
-- ARGV[1] job key prefix, ARGV[2] RPUSH or LPUSH, ARGV[3] n template pairs, ARGV[4..] template
-- pairs, then per job: id, data, description, meta, retry_intervals ('' for none)
local prefix = ARGV[1]
local push = ARGV[2]
local pairs_end = 3 + 2 * tonumber(ARGV[3])
local template = {}
for i = 4, pairs_end do template[#template + 1] = ARGV[i] end
local pushed = {}
for i = pairs_end + 1, #ARGV, 5 do
  local id = ARGV[i]
  local key = prefix .. id
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, unpack(template))
    if ARGV[i + 4] == '' then
      redis.call('HSET', key, 'data', ARGV[i + 1], 'description', ARGV[i + 2], 'meta', ARGV[i + 3])
    else
      redis.call('HSET', key, 'data', ARGV[i + 1], 'description', ARGV[i + 2], 'meta', ARGV[i + 3], 'retry_intervals', ARGV[i + 4])
    end
    pushed[#pushed + 1] = id
  end
end
if #pushed > 0 then
  redis.call('SADD', KEYS[2], KEYS[1])
  for j = 1, #pushed, 1000 do
    redis.call(push, KEYS[1], unpack(pushed, j, math.min(j + 999, #pushed)))
  end
end
return #pushed
"""
_SCRIPT_CHUNK = 1000  # jobs per script call: a few ms of Redis time at most
_SCRIPT_SHA = hashlib.sha1(_PUSH_SCRIPT.encode()).hexdigest()
# Per (queue, serializer, job spec): the job hash's fields that do not depend on the call, as RQ
# builds them, with the positions of its two timestamps (set again for every batch).
_templates: dict[tuple[str, Any, Any], tuple[list[Any], list[int]]] = {}
_TIMESTAMP_FIELDS = ("created_at", "enqueued_at")


def push_if_absent(connection: Redis, batches: Sequence[tuple[Queue, Sequence[Push]]], at_front: bool = False) -> int:
    """Push each batch (one function, one queue) unless Redis holds the job; returns how many were new.

    `at_front`: ahead of what each queue holds, in the batches' order (the first push at the head).
    """
    fast = fast_paths()
    pushed = 0
    calls: list[tuple[list[str], list[Any]]] = []
    if at_front:
        # Each push goes to the head in turn, so the last goes first and the first ends at the head.
        batches = [(queue, list(reversed(pushes))) for queue, pushes in reversed(batches)]
    for queue, pushes in batches:
        _check_ids(pushes)
        if fast and queue.is_async and pushes[0].due_at is None:
            for start in range(0, len(pushes), _SCRIPT_CHUNK):
                calls.append(_script_call(queue, pushes[start : start + _SCRIPT_CHUNK], at_front))
        else:
            pushed += sum(_push_with_rq(queue, push, at_front) for push in pushes)
    if calls:
        pushed += _run_scripts(connection, calls)
    return pushed


def _run_scripts(connection: Redis, calls: list[tuple[list[str], list[Any]]]) -> int:
    """All script calls in one round trip, by their SHA: no SCRIPT EXISTS before each pipeline (as
    redis-py's Script does) and no MULTI/EXEC (each call is atomic on its own; a push cut short
    leaves pending rows, which the outbox sends). A server that lost its script cache (a restart,
    a failover) answers NOSCRIPT: the script is loaded and those calls sent again, which is safe
    because a call writes nothing for a job Redis already holds."""
    pushed, todo = 0, calls
    for attempt in (1, 2):
        with connection.pipeline(transaction=False) as pipe:
            for keys, args in todo:
                pipe.evalsha(_SCRIPT_SHA, len(keys), *keys, *args)
            answers = pipe.execute(raise_on_error=False)
        missing = []
        for call, answer in zip(todo, answers, strict=True):
            if isinstance(answer, NoScriptError) and attempt == 1:
                missing.append(call)
            elif isinstance(answer, Exception):
                raise answer
            else:
                pushed += int(answer)
        if not missing:
            break
        connection.script_load(_PUSH_SCRIPT)
        todo = missing
    return pushed


def _check_ids(pushes: Sequence[Push]) -> None:
    ids = [push.job_id for push in pushes]
    if len(set(ids)) != len(ids):  # one hash written twice, its id queued twice; RQ refuses it too
        raise ValueError("the same job id appears more than once in one batch")
    for job_id in ids:  # a ':' would confuse RQ's registries
        validate_job_id(job_id)


def _build(queue: Queue, push: Push) -> Job:
    """The job RQ builds for `push`, signed (signing.py): what RQ's own path writes."""
    options = job_options(push.spec, push.job_id, push.args)
    if push.traceparent:  # the one meta key a push adds to the declared ones (app/queueing/tracing.py)
        options["meta"] = {**options["meta"], "otel_traceparent": push.traceparent}
    job = queue.create_job(push.spec.path, args=push.args, kwargs=push.kwargs, **options)
    job.meta[signing.SIGNATURE_META] = signing.sign_job(job)
    return job


def _push_with_rq(queue: Queue, push: Push, at_front: bool = False) -> int:
    """RQ's own unique enqueue (or schedule): nothing is written when the job's hash exists."""
    job = _build(queue, push)
    try:
        if push.due_at is not None and push.due_at > datetime.datetime.now(datetime.UTC):
            queue.schedule_job(job, push.due_at, unique=True)
        else:
            queue.enqueue_job(job, at_front=at_front, unique=True)
    except DuplicateJobError:
        return 0
    return 1


def _template(queue: Queue, push: Push) -> tuple[list[Any], list[int], str | None]:
    """The call-independent fields of the hash RQ writes for `push`'s job, built by RQ once.

    When it is built here, RQ has drawn `push`'s retry intervals: they are returned too, so the
    call takes them rather than drawing again (the same draws as RQ's own path, in order)."""
    key = (queue.name, queue.serializer, push.spec)
    cached = _templates.get(key)
    if cached is not None:
        return cached[0], cached[1], None
    job = _build(queue, push._replace(traceparent=None))  # per call, like the data: never in the template
    queue._prepare_for_queue(job)  # origin, enqueued_at, timeout, status: what RQ sets before saving
    if job.ttl or job._dependency_ids or job.repeats_left is not None or job.rate_limit_key:
        # RQ would also expire keys, register dependencies, schedule repeats or take a rate-limit
        # slot for such a job; the template below would skip that.
        raise ValueError(f"{push.spec.path}: a job with a ttl, dependencies, repeats or a rate limit needs RQ's own enqueue")
    fields = job.to_dict()
    for name in PER_CALL_FIELDS:
        if name != "retry_intervals":
            fields.pop(name, None)
    drawn = str(fields.pop("retry_intervals", ""))  # "" for a job without retries
    pairs: list[Any] = []
    for name, value in fields.items():
        pairs.extend((name, value))
    stamps = [index + 1 for index in range(0, len(pairs), 2) if pairs[index] in _TIMESTAMP_FIELDS]
    _templates[key] = (pairs, stamps)
    return pairs, stamps, drawn


def _script_call(queue: Queue, pushes: Sequence[Push], at_front: bool = False) -> tuple[list[str], list[Any]]:
    """One script call that pushes `pushes` (one function, one queue): its keys and arguments."""
    template, stamps, drawn = _template(queue, pushes[0])
    pairs = list(template)
    moment = utcformat(now())  # the jobs of a batch are created and enqueued together
    for index in stamps:
        pairs[index] = moment
    args: list[Any] = [Job.redis_job_namespace_prefix, "LPUSH" if at_front else "RPUSH", len(pairs) // 2, *pairs]
    spec = pushes[0].spec
    path, dumps, retries = spec.path, queue.serializer.dumps, spec.max_retries > 0
    base_meta = job_meta(spec)
    for push in pushes:
        if drawn is not None:
            intervals, drawn = drawn, None
        else:
            intervals = json.dumps(spec.retry_intervals()) if retries else ""
        data, description = dumps((path, None, push.args, push.kwargs)), describe(path, push.args)
        meta = {**base_meta, "otel_traceparent": push.traceparent} if push.traceparent else dict(base_meta)
        meta[signing.SIGNATURE_META] = signing.sign(signing.SignedFields(
            push.job_id, queue.name, data, description, spec.timeout, spec.result_ttl, spec.failure_ttl,
            json.loads(intervals) if intervals else None, meta,
        ))
        args.extend((push.job_id, zlib.compress(data), description, dumps(meta), intervals))
    return [queue.key, queue.redis_queues_keys], args


# -- worker bookkeeping -------------------------------------------------------------------------
# Plain functions that the worker's FastBookkeeping (app/queueing/worker/fast_bookkeeping.py)
# calls from inside its hooks, each given the RQ method it stands in for where it may fall back.


class BookkeepingState:
    """What the fast paths remember between two calls, one per worker."""

    def __init__(self) -> None:
        self.last_heartbeat: tuple[float, int] | None = None  # (monotonic time, TTL) of the last beat sent
        self.suspension_checked_at = 0.0
        self.state_sent: str | None = None  # the worker state Redis last got from this worker
        self.prepared_job_id: str | None = None  # prepared by fast_execute_job: prepare_job_execution skips it


def fast_heartbeat(worker: _WorkerBase, state: BookkeepingState, ttl: int, rq_heartbeat: Callable[[int, Any], None]) -> None:
    """RQ beats up to five times per job, three round trips each, all with the same TTL: within
    one second a beat with the same TTL changes nothing a watcher can see. One pipeline a beat."""
    import time

    moment = time.monotonic()
    last = state.last_heartbeat
    if last is not None and last[1] == ttl and moment - last[0] < 1.0:
        return
    with worker.connection.pipeline(transaction=False) as pipe:
        rq_heartbeat(ttl, pipe)
        pipe.execute()
    state.last_heartbeat = (moment, ttl)


def suspension_check_due(state: BookkeepingState) -> bool:
    """`rq suspend` takes effect within a second instead of before every single job."""
    import time

    moment = time.monotonic()
    if moment - state.suspension_checked_at < 1.0:
        return False
    state.suspension_checked_at = moment
    return True


def fast_execute_job(worker: _SimpleWorkerBase, state: BookkeepingState, job: Job, queue: Any) -> None:
    """SimpleWorker.execute_job, with RQ's two preparation transactions sent as one."""
    heartbeat_ttl = worker.get_heartbeat_ttl(job)
    with worker.connection.pipeline() as pipeline:
        execution = Execution.create(job, heartbeat_ttl, pipeline=pipeline, worker_name=worker.name)
        worker.executions[execution.id] = execution
        worker.set_state(WorkerStatus.BUSY, pipeline=pipeline)
        worker.heartbeat(heartbeat_ttl, pipeline=pipeline)
        job.prepare_for_execution(worker.name, pipeline=pipeline)
        pipeline.persist(job.key)
        if len(worker.queues) == 1:
            pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
        pipeline.execute()
    state.prepared_job_id = job.id
    worker.perform_job(job, queue, execution)
    worker.set_state(WorkerStatus.IDLE)


def prepared_already(state: BookkeepingState, job: Job) -> bool:
    """True (once) for the job fast_execute_job prepared: RQ's own preparation is skipped."""
    if state.prepared_job_id != job.id:
        return False
    state.prepared_job_id = None
    return True


def state_unchanged(worker: _WorkerBase, state: BookkeepingState, new_state: str, pipeline: Any) -> bool:
    """True when Redis already holds `new_state` for this worker: only the worker's copy is set."""
    if pipeline is None and new_state == state.state_sent:
        worker._state = new_state
        return True
    return False


def end_with_success(job: Job) -> bool:
    """handle_execution_ended for a job that did not fail: its end is written with the success
    bookkeeping (fast_job_success), not in a round trip of its own. False for a failed job."""
    if job.get_status(refresh=False) == JobStatus.FAILED:
        return False
    job.ended_at = now()
    job.last_heartbeat = job.ended_at
    return True


def fast_success_applies(job: Job) -> bool:
    """fast_job_success covers a job that neither repeats nor holds a rate-limit slot."""
    return not ((job.repeats_left or 0) > 0 or job.has_rate_limit)


def fast_job_success(worker: _SimpleWorkerBase, job: Job, queue: Any, execution: Any) -> None:
    """handle_job_success in one transaction, the job's statistics (stats.add_to) inside it."""
    assert job.started_at and job.ended_at
    result_ttl = job.get_result_ttl(worker.default_result_ttl)
    with worker.connection.pipeline() as pipeline:
        pipeline.exists(job.key)  # first, so it tells what the commit found
        worker.increment_successful_job_count(pipeline=pipeline)
        worker.increment_total_working_time(job.ended_at - job.started_at, pipeline)
        if result_ttl != 0:
            record_success(job, result_ttl, pipeline, worker.name, execution)
        job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
        job._status = JobStatus.FINISHED
        worker.cleanup_execution(job, pipeline=pipeline, execution=execution)
        worker.set_state(WorkerStatus.IDLE, pipeline=pipeline)
        duration, wait = stats.durations(job)
        stats.add_to(pipeline, job.func_name or "", job.origin, "success", duration, wait)
        pipeline.scard(job.dependents_key)
        replies = pipeline.execute()
    job_hash_existed, dependents = replies[0], replies[-1]
    if not job_hash_existed and result_ttl != 0:
        # Redis lost the job's hash while it ran (a FLUSHDB, a failover): the status and
        # times just written would stand alone, so the whole job is written again.
        logger.warning("job %s: its data vanished from Redis while it ran; written again", job.id)
        job.save()
    if dependents:
        queue.enqueue_dependents(job)
    release_slot(job)
    worker.log.info("Successfully completed job %s in %ss on worker %s", job.id, job.ended_at - job.started_at, worker.name)


def record_success(job: Job, result_ttl: int, pipeline: Any, worker_name: str, execution: Any) -> None:
    """Job._handle_success, writing only what running the job changed (status and times)."""
    assert job.started_at is not None and job.ended_at is not None
    pipeline.hset(
        job.key,
        mapping={
            "status": JobStatus.FINISHED.value,
            "started_at": utcformat(job.started_at),
            "ended_at": utcformat(job.ended_at),
            "last_heartbeat": utcformat(job.ended_at),
            "worker_name": worker_name,
        },
    )
    Result.create(
        job,
        Result.Type.SUCCESSFUL,
        return_value=job._result,
        ttl=result_ttl,
        worker_name=worker_name,
        pipeline=pipeline,
        execution_id=execution.id,
        execution_started_at=execution.created_at,
        execution_ended_at=job.ended_at,
    )
    job.finished_job_registry.add(job, result_ttl, pipeline)


# -- JSON only, in every process ----------------------------------------------------------------

# What a job whose data is not a JSON call (a pickle, garbage, the wrong shape) calls: no function
# has this name, so every worker refuses it, and every page shows it as what it is.
UNREADABLE_FUNC = "(unreadable job data)"
_original_deserialize_data = Job._deserialize_data


def _deserialize_data_or_mark(job: Job) -> None:
    """Job._deserialize_data, reading data that is not a JSON call as a call of UNREADABLE_FUNC."""
    try:
        _original_deserialize_data(job)  # type: ignore[no-untyped-call]  # rq leaves it untyped
        shaped = (
            isinstance(job._func_name, str)
            and isinstance(job._args, (list, tuple))
            and isinstance(job._kwargs, dict)
            and all(isinstance(name, str) for name in job._kwargs)
        )
    except DeserializationError:
        shaped = False
    if not shaped:
        job._func_name, job._instance, job._args, job._kwargs = UNREADABLE_FUNC, None, (), {}


# The fields of a job hash by the form RQ 3.0's Job.restore reads them in (rq/job.py).
_TEXT_FIELDS = (
    "origin", "worker_name", "description", "group_id", "dependency_id", "rate_limit_key",
    "success_callback_name", "failure_callback_name", "stopped_callback_name",
)
_DATE_FIELDS = ("created_at", "enqueued_at", "started_at", "ended_at", "last_heartbeat")
_INT_FIELDS = (
    "timeout", "result_ttl", "failure_ttl", "number_of_retries", "retries_left", "repeats_left", "ttl",
    "rate_limit_concurrency", "success_callback_timeout", "failure_callback_timeout", "stopped_callback_timeout",
    "allow_dependency_failures", "enqueue_at_front", "enqueue_at_front_on_retry",
)
_JSON_FIELDS = ("retry_intervals", "repeat_intervals", "dependency_ids", "webhooks")
_CHECKED_FIELDS = frozenset((*_TEXT_FIELDS, *_DATE_FIELDS, *_INT_FIELDS, *_JSON_FIELDS, "status", "exc_info"))
_original_restore = Job.restore


def _restore_or_mark(job: Job, raw_data: Any) -> Any:
    """Job.restore that never raises on what a field holds: a hash RQ did not write (bytes that are
    not text, a status RQ does not know, a date or a number that does not parse) is read without
    the fields it cannot read, and the job remembers their names in `unreadable_fields`."""
    job.unreadable_fields = ()  # type: ignore[attr-defined]
    try:
        return _original_restore(job, raw_data)
    except NoSuchJobError:
        raise
    except Exception:
        pass
    readable: dict[Any, Any] = {}
    dropped: list[str] = []
    for raw_name, value in raw_data.items():
        name = raw_name.decode("utf-8", "replace") if isinstance(raw_name, bytes) else str(raw_name)
        if _field_reads(name, value):
            readable[raw_name] = value
        else:
            dropped.append(name)
    job.unreadable_fields = tuple(sorted(dropped))  # type: ignore[attr-defined]
    try:
        return _original_restore(job, readable)
    except NoSuchJobError:
        raise
    except Exception:  # what else could fail: read only what a job must have
        job.unreadable_fields = tuple(sorted(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in raw_data))  # type: ignore[attr-defined]
        return _original_restore(job, {key: raw_data[key] for key in raw_data if key in (b"data", "data")})


def _field_reads(name: str, value: Any) -> bool:
    if name not in _CHECKED_FIELDS:
        return True  # data, meta, result: read through the serializer, which never raises; others, ignored by RQ
    try:
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        if name in _DATE_FIELDS:
            rq.utils.utcparse(text)
        elif name == "status":
            JobStatus(text)
        elif name in _INT_FIELDS:
            int(text)
        elif name in _JSON_FIELDS:
            json.loads(text)
        elif name == "exc_info":
            try:
                zlib.decompress(value).decode("utf-8")
            except zlib.error:
                pass  # RQ falls back to the bytes as they are, which decoded as text above
    except (UnicodeDecodeError, ValueError, TypeError, RecursionError):
        return False
    return True


def install_json_only() -> None:
    """No reader in this process unpickles, and none fails on what a job hash holds: RQ's default
    serializer is JSON, unreadable data reads as a marker, unreadable fields are left out."""
    rq.serializers.DefaultSerializer.dumps = staticmethod(JobSerializer.dumps)
    rq.serializers.DefaultSerializer.loads = staticmethod(JobSerializer.loads)
    Job._deserialize_data = _deserialize_data_or_mark  # type: ignore[method-assign]
    Job.restore = _restore_or_mark  # type: ignore[method-assign,assignment]


def json_only_installed() -> bool:
    return (
        rq.serializers.DefaultSerializer.loads is JobSerializer.loads
        and Job._deserialize_data is _deserialize_data_or_mark
        and Job.restore is _restore_or_mark
    )


# -- speed-ups of two RQ hot spots --------------------------------------------------------------

_MODULES_RESOLVING_SERIALIZERS = ("rq.job", "rq.results", "rq.worker.base", "rq.queue", "rq.registry", "rq.scheduler", "rq.cron")
_original_resolve = rq.serializers.resolve_serializer
_original_utcparse = rq.utils.utcparse
_resolved: dict[Any, Any] = {}


def resolve_serializer(serializer: Any = None) -> Any:
    """RQ checks isinstance() against a runtime-checkable Protocol six times per job (~6 % of the
    worker's CPU on Python 3.11); for a given serializer the answer never changes."""
    try:
        return _resolved[serializer]
    except KeyError:
        resolved = _original_resolve(serializer)  # raises for a bad serializer: not remembered
        _resolved[serializer] = resolved
        return resolved
    except TypeError:  # unhashable: nothing to remember it by
        return _original_resolve(serializer)


def utcparse(string: str) -> datetime.datetime:
    # rq.utils.utcformat writes '%Y-%m-%dT%H:%M:%S.%fZ': fromisoformat reads that far faster than strptime.
    if len(string) == 27 and string[10] == "T" and string[-1] == "Z":
        return datetime.datetime.fromisoformat(string[:-1]).replace(tzinfo=datetime.UTC)
    return _original_utcparse(string)


def install_speedups() -> bool:
    """Install both (process-wide) when the fast paths are on; returns whether they are in."""
    if not fast_paths():
        return False
    _replace(rq.serializers, "resolve_serializer", _original_resolve, resolve_serializer)
    for name in _MODULES_RESOLVING_SERIALIZERS:
        _replace(importlib.import_module(name), "resolve_serializer", _original_resolve, resolve_serializer)
    _replace(rq.utils, "utcparse", _original_utcparse, utcparse)
    _replace(importlib.import_module("rq.scheduler"), "utcparse", _original_utcparse, utcparse)
    return True


def speedups_installed() -> bool:
    return rq.utils.utcparse is utcparse and rq.serializers.resolve_serializer is resolve_serializer


def _replace(module: Any, name: str, original: Callable[..., Any], replacement: Callable[..., Any]) -> None:
    if getattr(module, name, None) is original:
        setattr(module, name, replacement)
