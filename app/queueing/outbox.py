"""The outbox's end states and its reconciler: nothing committed is lost, nothing ended comes back.

`mark_ended` / `mark_cancelled` close a row (only a pending one: the end states are final).
`reconcile()` runs in every scheduler pass: it pages through the pending rows with a cursor
(PAGE rows a pass, so its cost is bounded however many rows are pending, and every row is seen
again within ceil(pending / PAGE) + 1 passes) and, for each row older than MIN_AGE on the database's
own clock, reads the job's state in Redis (rows are paged by id: every pending row is visited
once per cycle, whatever its age; a younger row only for the check of a swallowed push below):

- ended in Redis (finished, failed, stopped, canceled) → the row is closed as such (the worker's
  own write was missed: a database error, a killed process);
- unknown to Redis (lost with a flush, a failover, a restart without persistence, or never
  pushed because the process died first) and seen so twice MISSING_AFTER (3 s) apart → pushed again,
  conditionally (dispatch.send), unless a worker still claims it: a job running when Redis lost
  its hash is claimed again by its worker's liveness thread within LIVENESS_INTERVAL
  (keys.running), and a second copy would run beside it;
- queued but in no list (a popper froze or died holding it: a blocking pop answered while the
  process was stopped; a failover lost the entry), seen so twice HANDOVER_SECONDS (2 s) apart →
  pushed back at the front as a new push, unless its popper claimed the push it holds
  (rq_compat.take_back_popped and claim_popped: one of the two wins). Claimed and still in no
  list, unstarted, 10 s on → pushed all the same (the popper died between its claim and its start).
  Any age: the push happened, so the row need not be MIN_AGE old;
- started or scheduled while nothing holds it (no started-registry entry, no running worker's
  claim, not in the scheduled registry, in no list: a take-back or a retry cut off by a Redis
  restart), seen so twice MISSING_AFTER apart → back to the front of its queue (a retry's
  remaining backoff is not waited);
- anything else (queued, started, scheduled, deferred, each held where RQ expects) → left alone.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db.models import BooleanField, Count, DateTimeField, ExpressionWrapper, Max, Min, Q, Value
from django.db.models.functions import Now
from redis.exceptions import RedisError, WatchError
from rq.exceptions import DeserializationError, NoSuchJobError

from . import catalog, dispatch, keys, rq_compat
from .catalog import Push
from .connections import get_queue
from .job_reports import last_line
from .jobclass import QueueingJob
from .liveness import LIVENESS_INTERVAL
from .models import BackgroundJob
from .outbox_ends import _close, mark_ended
from .recovery import HANDOVER_SECONDS, STUCK_AFTER_SECONDS, orphans, seen_twice, unbacked
from .serialization import JobSerializer

logger = logging.getLogger(__name__)

# A job younger than this may still be on its way (its on-commit push has not run yet). Safety does
# not rest on it: every push is conditional, a row is re-sent only at its second sighting
# MISSING_AFTER later, and a request's push that comes later than that re-reads its rows
# (dispatch.LATE_AFTER). It only spares young rows a first sighting, and is part of how soon a
# job lost with Redis's data runs again: MIN_AGE + MISSING_AFTER + one 2 s pass, about 7 s
# (tests/test_declared_jobs.py::test_a_lost_job_is_re_sent_on_its_second_sighting_unless_a_worker_still_runs_it).
MIN_AGE = timedelta(seconds=2)
PAGE = 500
# A beat of a worker's liveness thread and 2 s to spare: a job whose hash was lost while it ran
# is claimed again (keys.running) before the reconciler's second sighting, MISSING_AFTER on.
MISSING_AFTER = LIVENESS_INTERVAL + 2

State = BackgroundJob.State
_CLOSED_BY_STATUS = {
    "finished": (State.FINISHED, ""),
    "failed": (State.FAILED, "failed (reason in the failed registry)"),
    "stopped": (State.CANCELLED, "stopped by an operator"),
    "canceled": (State.CANCELLED, "cancelled by an operator"),
}


def reconcile(connection: Any, min_age: timedelta = MIN_AGE, page: int = PAGE, missing_after: int = MISSING_AFTER) -> dict[str, int]:
    """One bounded pass over the next page of pending rows; returns counts of what it did."""
    counts = {"seen": 0, "closed": 0, "resent": 0, "requeued": 0}
    cursor = connection.get(keys.OUTBOX_CURSOR)
    # Settled: older than min_age on the database's clock. A younger row may not be pushed yet; it
    # is looked at only for a push its popper swallowed (its hash says queued: it was pushed).
    settled_since = ExpressionWrapper(Now() - Value(min_age), output_field=DateTimeField())
    rows = BackgroundJob.objects.filter(state=State.PENDING).annotate(
        settled=ExpressionWrapper(Q(created_at__lt=settled_since), output_field=BooleanField())
    )
    if cursor:
        rows = rows.filter(id__gt=cursor.decode())
    fields = ("id", "queue", "func", "args", "kwargs", "due_at", "created_at", "trace_parent")
    found = list(rows.order_by("id").values_list(*fields, "settled")[:page])
    young = {row[0] for row in found if not row[-1]}
    batch = [row[:-1] for row in found]
    if len(batch) == page:
        connection.set(keys.OUTBOX_CURSOR, batch[-1][0], ex=3600)
    else:
        connection.delete(keys.OUTBOX_CURSOR)  # the end of the pending rows: the next pass starts over
    if not batch:
        return counts
    counts["seen"] = len(batch)
    with connection.pipeline(transaction=False) as pipe:
        for job_id, *_ in batch:
            pipe.hget(rq_compat.job_key(job_id), "status")
        statuses = pipe.execute()
    missing = [job_id for (job_id, *_), raw in zip(batch, statuses, strict=True) if raw is None and job_id not in young]
    with connection.pipeline(transaction=False) as pipe:
        for job_id in missing:
            pipe.exists(keys.running(job_id))
        claimed = {job_id for job_id, held in zip(missing, pipe.execute(), strict=True) if held}
    unheld = unbacked(
        connection,
        [(job_id, queue) for (job_id, queue, *_), raw in zip(batch, statuses, strict=True)
         if raw in (b"started", b"scheduled") and job_id not in young],
        after=missing_after,
    )
    swallowed = orphans(
        connection, [(job_id, queue) for (job_id, queue, *_), raw in zip(batch, statuses, strict=True) if raw == b"queued"], after=HANDOVER_SECONDS
    )
    pushes: list[Push] = []
    try:
        _reconcile_rows(connection, batch, statuses, young, claimed, unheld, swallowed, pushes, counts, missing_after)
    finally:
        # What was found missing goes even if a later row broke the pass: its sightings are spent.
        if pushes:
            # At the front, like every other way back into a queue (the sweeps, the orphan push
            # above): a job Redis lost was enqueued before anything that waits there now, and
            # sent again at the back it would wait behind all that was enqueued during the outage.
            # Oldest first, as they were enqueued (the page is in id order, for its cursor).
            created = {row[0]: row[6] for row in batch}
            pushes.sort(key=lambda push: created[push.job_id])
            counts["resent"] = dispatch.send(pushes, at_front=True)
            if counts["resent"]:
                logger.warning("%d job(s) were missing from Redis: re-sent (first: %s)", counts["resent"], pushes[0].job_id)
    return counts


def _reconcile_rows(
    connection: Any, batch: list[Any], statuses: list[Any], young: set[str], claimed: set[str], unheld: set[str],
    swallowed: set[str], pushes: list[Push], counts: dict[str, int], missing_after: int,
) -> None:
    for (job_id, queue, func, args, kwargs, due_at, _created, trace_parent), raw in zip(batch, statuses, strict=True):
        status = raw.decode() if raw is not None else None
        if job_id in young and job_id not in swallowed:
            continue  # too young for anything but the take-back of a swallowed push
        if status in _CLOSED_BY_STATUS:
            state, reason = _CLOSED_BY_STATUS[status]
            if status == "failed":
                reason = _failure_reason(connection, job_id) or reason
            counts["closed"] += _close([job_id], state, reason)
            continue
        if status is None:
            if not catalog.is_declared(func):
                mark_ended(job_id, failed=True, reason=f"UndeclaredJobError: {func!r} is no longer a declared job")
                counts["closed"] += 1
                continue
            if job_id in claimed or not seen_twice(connection, "missing", job_id, after=missing_after):
                continue  # still running on a worker, or not yet seen missing long enough
            pushes.append(Push(catalog.spec_for(func), job_id, args, kwargs, due_at, traceparent=trace_parent))
        elif status == "queued" and job_id in swallowed:
            if _take_back_swallowed(connection, queue, job_id):
                logger.warning("job %s (%s) was queued in no list: pushed again", job_id, func)
                counts["requeued"] += 1
        elif job_id in unheld:
            outcome = _requeue_unheld(connection, queue, job_id, status)
            if outcome == "requeued":
                logger.warning("job %s (%s) said %s but nothing held it: requeued", job_id, func, status)
                counts["requeued"] += 1
            elif outcome == "unreadable" and catalog.is_declared(func):
                # A partial hash (a worker's late write after Redis lost the job): dropped, the
                # job is sent again from its row.
                logger.warning("job %s (%s) said %s but its hash was partial: re-sent from its row", job_id, func, status)
                pushes.append(Push(catalog.spec_for(func), job_id, args, kwargs, due_at, traceparent=trace_parent))


def _take_back_swallowed(connection: Any, queue: str, job_id: str) -> bool:
    """A job that says queued in no list, seen so twice HANDOVER_SECONDS apart: a frozen or dead
    popper holds it (its blocking pop was answered while it was stopped), or a failover lost its
    entry. It goes back as a new push unless its popper claimed the push; claimed and still
    unstarted STUCK_AFTER_SECONDS on, all the same. Look and push are one step: a job a sweep or
    an operator pushed meanwhile is not pushed twice
    (tests/faults/test_prompt_redelivery.py::test_a_job_popped_by_a_frozen_idle_member_runs_elsewhere_within_the_lease)."""
    taken = rq_compat.take_back_popped(connection, queue, job_id)
    if taken == -1 and seen_twice(connection, "claimed", job_id, after=STUCK_AFTER_SECONDS):
        taken = rq_compat.take_back_popped(connection, queue, job_id, even_claimed=True)
    return taken == 1


def _requeue_unheld(connection: Any, queue: str, job_id: str, status: str | None) -> str:
    """Requeue a job nothing holds, only if its hash still says what the pass read (an operator's
    cancel meanwhile, or a worker that took it, wins); returns what was done."""
    key = rq_compat.job_key(job_id)
    with connection.pipeline() as pipe:
        try:
            pipe.watch(key)
            now_status = pipe.hget(key, "status")
            if now_status is None or now_status.decode() != status:
                return "changed"
            try:
                job = QueueingJob.fetch(job_id, connection=connection, serializer=JobSerializer)
            except (NoSuchJobError, DeserializationError, ValueError, TypeError, KeyError):
                pipe.multi()
                pipe.delete(key)
                pipe.execute()
                return "unreadable"
            pipe.multi()
            rq_compat.requeue_at_front(get_queue(queue), job, pipeline=pipe)
            pipe.execute()
            return "requeued"
        except WatchError:
            return "changed"


def _failure_reason(connection: Any, job_id: str) -> str:
    """The reason the worker would have recorded: its latest result's last traceback line (a 550
    refusal, a missing row), read back when the worker's own write of the row failed."""
    try:
        job = QueueingJob.fetch(job_id, connection=connection, serializer=JobSerializer)
        result = job.latest_result()
    except (NoSuchJobError, RedisError, ValueError):
        return ""
    return last_line(result.exc_string) if result is not None else ""


PURGE_BATCH = 5000
PURGE_BATCHES_PER_PASS = 10


def retention() -> timedelta:
    """How long an ended row (and its ledger) is kept: settings.QUEUEING_LEDGER_RETENTION_DAYS."""
    from django.conf import settings

    return timedelta(days=int(getattr(settings, "QUEUEING_LEDGER_RETENTION_DAYS", 7)))


def purge_ended(older_than: timedelta | None = None, batch: int = PURGE_BATCH, max_batches: int | None = None) -> int:
    """Delete ended rows older than `older_than` (default: `retention()`; the database's clock),
    `batch` rows a statement, `max_batches` statements at most (None: until none is left).

    Batches keep each DELETE short, so a first purge of a large table holds no long lock and
    writes no huge transaction; a pending row is never deleted, however old.
    """
    cutoff = ExpressionWrapper(Now() - Value(older_than or retention()), output_field=DateTimeField())
    ended = BackgroundJob.objects.exclude(state=State.PENDING).filter(ended_at__lt=cutoff)
    total = batches = 0
    while max_batches is None or batches < max_batches:
        ids = list(ended.order_by().values_list("pk", flat=True)[:batch])
        if not ids:
            break
        deleted, _ = BackgroundJob.objects.filter(pk__in=ids).exclude(state=State.PENDING).delete()
        total += deleted
        batches += 1
        if len(ids) < batch:
            break  # that was the last of them: no query to find none left
    return total


def purge_hourly(connection: Any) -> int:
    """Purge ended rows at most once an hour, whichever scheduler pass comes first.

    A pass deletes `PURGE_BATCHES_PER_PASS` batches at most, so it stays within its lock's life
    (interval + 3 s); a backlog larger than that goes on at the next pass, not an hour later.
    """
    if not connection.set(keys.OUTBOX_PURGED, 1, nx=True, ex=3600):
        return 0
    deleted = purge_ended(batch=PURGE_BATCH, max_batches=PURGE_BATCHES_PER_PASS)
    if deleted >= PURGE_BATCH * PURGE_BATCHES_PER_PASS:
        connection.delete(keys.OUTBOX_PURGED)  # more to do: the next pass goes on
    if deleted:
        logger.info("purged %d ended outbox row(s) older than %s", deleted, retention())
    return deleted


def pending_stats() -> dict[str, Any]:
    """For /metrics: how many rows are pending, and the age of the oldest (database clock)."""
    # One query, and the age on the database's clock, like the reconciler's: a web host whose
    # clock is off must not make the alert on this age fire, or stay silent.
    found = BackgroundJob.objects.filter(state=State.PENDING).aggregate(
        count=Count("pk"), oldest=Min("created_at"), now=Max(Now())
    )
    oldest, now = found["oldest"], found["now"]
    age = (now - oldest).total_seconds() if oldest is not None and now is not None else 0.0
    return {"pending": found["count"], "oldest_pending_age_seconds": max(0.0, age)}
