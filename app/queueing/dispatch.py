"""When a recorded job is pushed to Redis: at once after its commit, or after the response.

Outside a request (a worker, the scheduler, a management command) a committed job is pushed at
once. While a request is being served, the push waits for `request_finished`, which Django sends
when the WSGI server closes the response: gunicorn has written it to the client by then, so the
client never waits for Redis, and all the jobs of one request go in one round trip.

The window this opens is the one the outbox already covers: a process killed between the
response and the push leaves the job recorded but not in Redis, and the outbox reconciler sends
it (outbox.py: once the row is MIN_AGE old and seen missing twice, MISSING_AFTER apart).

A push that comes late (its response took longer than LATE_AFTER after the commit: a slow client,
a session save waiting on a lock) may come after the reconciler sent the job, after the job ran
and after Redis lost its hash (a flush, a failover): the conditional push would then queue it a
second time. So a late push first asks the database which of its rows are still pending and
pushes only those; when the database cannot answer, it pushes nothing and leaves the rows to the
reconciler.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError

from . import rq_compat, tracing
from .catalog import Push
from .connections import get_queue, redis_connection

logger = logging.getLogger(__name__)

# Seconds after the commit past which a request's push checks its rows first. Normal requests
# answer in milliseconds; the reconciler re-sends a row no sooner than its second sighting,
# MISSING_AFTER (3 s, counted in whole seconds of a TTL, so 2.5 s at worst) after the first.
LATE_AFTER = 2.0


# Per thread: WSGI servers serve one request per thread at a time (gunicorn sync/gthread, runserver).
_state = threading.local()


def after_commit(pushes: Sequence[Push]) -> None:
    from . import eager

    run_here, pushes = eager.split(pushes)  # eager mode (tests): run at once, not pushed for a worker
    if run_here:
        eager.run(run_here)
    if not pushes:
        return
    pending: list[Push] | None = getattr(_state, "pending", None)
    if pending is None:
        send(pushes)
    else:
        if not pending:
            _state.committed_at = time.monotonic()
        pending.extend(pushes)


def on_request_started(**_: Any) -> None:
    # Anything left from a request whose response was never closed goes now rather than never:
    # late by definition.
    leftover = getattr(_state, "pending", None)
    _state.pending = []
    if leftover:
        send(_still_pending(leftover))


def on_request_finished(**_: Any) -> None:
    pending: list[Push] | None = getattr(_state, "pending", None)
    _state.pending = None
    if pending:
        late = time.monotonic() - getattr(_state, "committed_at", 0.0) > LATE_AFTER
        send(_still_pending(pending) if late else pending)


def _still_pending(pushes: Sequence[Push]) -> list[Push]:
    """The pushes whose outbox row is still pending; none when the database cannot say."""
    from django.db import DatabaseError

    from .models import BackgroundJob

    try:
        open_ids = set(
            BackgroundJob.objects.filter(pk__in=[push.job_id for push in pushes], state=BackgroundJob.State.PENDING)
            .values_list("pk", flat=True)
        )
    except DatabaseError as exc:
        logger.warning("%d late push(es) left to the outbox reconciler: the database did not answer (%s)", len(pushes), exc)
        return []
    if len(open_ids) < len(pushes):
        logger.info("%d late push(es) skipped: their jobs ended meanwhile", len(pushes) - len(open_ids))
    return [push for push in pushes if push.job_id in open_ids]


def send(pushes: Sequence[Push], at_front: bool = False) -> int:
    """Push recorded jobs in one pipelined round trip; returns how many were new to Redis.

    Every push is conditional: a job whose hash Redis already holds (pushed by the outbox
    reconciler meanwhile, or by an earlier request) is left alone, never queued twice.
    A Redis outage is logged, not raised: the records stay pending and the outbox reconciler
    sends them when Redis is back. `at_front`: ahead of what the queues hold, in this order
    (jobs Redis lost, sent again: they were enqueued before anything waiting now).
    """
    if not pushes:
        return 0
    if not at_front and any(push.at_front for push in pushes):  # standard tasks' priority (tasks_backend.py)
        return send([push for push in pushes if push.at_front], at_front=True) + send([push for push in pushes if not push.at_front])
    # Consecutive pushes of one function on one queue make a batch; the batches keep the pushes'
    # order, so a queue receives its jobs in the order they were enqueued.
    batches: list[list[Push]] = []
    for push in pushes:
        last = batches[-1][0] if batches else None
        if last is not None and last.spec is push.spec and last.due_at is None and push.due_at is None:
            batches[-1].append(push)
        else:
            batches.append([push])
    spans = tracing.start_push(pushes, resent=at_front)  # none when tracing is off
    try:
        return rq_compat.push_if_absent(redis_connection(), [(get_queue(batch[0].spec.queue_name), batch) for batch in batches], at_front)
    except RedisError as exc:
        logger.warning(
            "%d job(s) recorded but not sent, Redis unavailable (the outbox will send them): %s; first: %s (%s)",
            len(pushes), exc, pushes[0].job_id, pushes[0].spec.path,
        )
        return 0
    finally:
        tracing.end_spans(spans)
