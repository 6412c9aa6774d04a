"""`push_if_absent`: the fast path of every push, with RQ's own unique enqueue as its fallback.

A batch of one function on one queue is written from one RQ-built template by one Lua script
(one HSET per job, one RPUSH), and only for jobs whose hash Redis does not hold: a push is never
doubled. Without the fast paths (`version.fast_paths()`), or for a job RQ must schedule, RQ's own
unique enqueue (`unique=True`) writes it, job by job.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError
from rq.exceptions import DuplicateJobError
from rq.job import Job, validate_job_id
from rq.utils import now, utcformat

from .. import signing
from ..catalog import Push, describe, job_meta, job_options
from .version import fast_paths

if TYPE_CHECKING:
    from redis import Redis
    from rq import Queue


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
        # An ASYNC=False queue's jobs run eagerly (eager.py) before any push; RQ's own path stays
        # the answer for one that reaches here all the same.
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
