"""The task browser's operations on one ledger row: its live state in Redis and the safe actions.

The browser (admin.py BackgroundJobAdmin) reads the ledger; what a pending row is doing right now
is only in Redis, read here by `live_state` (Redis data is untrusted input: anything unreadable is
said so, never raised). The three actions reuse the operations the other operator pages use, so
the outbox row stays as consistent as it is there:

- requeue a failed job: rq's failed registry `requeue`, as `manage.py failedjobs --requeue`; the
  row stays `failed` until the new run ends (outbox_ends.mark_ended lets a success replace it);
- cancel a pending job that is not running: the job class's `cancel` (jobclass.QueueingJob), which
  closes the row as cancelled first; a row whose job Redis lost is closed by `mark_cancelled` alone
  (the reconciler would re-send it otherwise);
- stop a running job: django-rq's `stop_jobs` (its "stop" action), a stop-job command to the
  job's worker, whose end closes the row as cancelled (worker/outbox_closing.py).

Each refuses a row in another state with the reason, and each success is recorded: an action entry
in the row's `actions` (who, when, what) and Django's admin LogEntry (tests/test_task_browser.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from .models import BackgroundJob

logger = logging.getLogger(__name__)

State = BackgroundJob.State
ACTIONS = ("requeue", "cancel", "stop")


@dataclass(frozen=True)
class Done:
    ok: bool
    message: str


def display_state(state: str, attempts: int) -> str:
    """The state an operator reads: a pending row with an ended attempt is *retrying*."""
    return "retrying" if state == State.PENDING and attempts > 0 else state


def _queue_of(row: BackgroundJob) -> Any:
    from .connections import get_queue

    return get_queue(row.queue)


def _redis_job(row: BackgroundJob) -> Any:
    """The row's job as Redis holds it, or None; raises on unreadable data (callers say so)."""
    return _queue_of(row).fetch_job(row.id)


def _status(job: Any) -> str:
    """The job's status as Redis says it ('queued', 'started'...), '' for none."""
    status = job.get_status(refresh=False)
    return str(getattr(status, "value", status) or "")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def live_state(row: BackgroundJob) -> dict[str, Any]:
    """What the row's job is doing now, for the job page's live panel (polled every few seconds).

    The ledger's own fields come with it, so the page can tell when the row has ended."""
    data: dict[str, Any] = {
        "id": row.id,
        "state": display_state(row.state, row.attempts),
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "next_retry_at": _iso(row.next_retry_at),
        "last_error": row.last_error,
        "ended_at": _iso(row.ended_at),
        "redis": None,
        "worker": None,
        "since": None,
        "scheduled_for": None,
        "summary": "",
    }
    if row.state not in (State.PENDING, State.FAILED):
        data["summary"] = f"{row.state}: nothing more happens to this job"
        return data
    try:
        job = _redis_job(row)
        if job is None:
            data["summary"] = "not in Redis" + (" (the reconciler re-sends a pending row's job)" if row.state == State.PENDING else "")
            return data
        status = _status(job) or "unknown"
        data["redis"] = status
        if status == "started":
            data["worker"] = str(job.worker_name or "") or None
            data["since"] = _iso(job.started_at)
            data["summary"] = f"started on worker {data['worker'] or '(unknown)'} since {data['since'] or '(unknown)'}"
        elif status == "scheduled":
            scheduled = _queue_of(row).scheduled_job_registry.get_scheduled_time(row.id)
            data["scheduled_for"] = _iso(scheduled)
            data["summary"] = f"scheduled for {data['scheduled_for'] or '(unknown)'}"
        elif status == "queued":
            data["since"] = _iso(job.enqueued_at)
            data["summary"] = f"queued since {data['since'] or '(unknown)'}"
        else:
            data["summary"] = status
    except Exception as exc:  # a hostile or corrupt hash, an undeclared queue, Redis away
        logger.warning("live state of job %s unreadable: %s", row.id, type(exc).__name__)
        data["redis"] = "unreadable"
        data["summary"] = f"Redis's record of this job could not be read ({type(exc).__name__})"
    return data


def record_action(job_id: str, action: str, username: str, note: str) -> None:
    """Append an operator's action to the row's `actions`, under the row's lock (two operators at once
    keep both). The worker never writes that column (models.BackgroundJob.actions)."""
    with transaction.atomic():
        row = BackgroundJob.objects.select_for_update().only("actions").get(pk=job_id)
        actions = list(row.actions) if isinstance(row.actions, list) else []
        actions.append({"action": action, "by": username, "at": timezone.now().isoformat(), "note": note})
        BackgroundJob.objects.filter(pk=job_id).update(actions=actions)


def requeue(row: BackgroundJob) -> Done:
    if row.state != State.FAILED:
        return Done(False, f"Only a failed job can be requeued; this one is {display_state(row.state, row.attempts)}.")
    from rq.exceptions import InvalidJobOperation, NoSuchJobError

    try:
        _queue_of(row).failed_job_registry.requeue(row.id)
    except (InvalidJobOperation, NoSuchJobError):
        return Done(False, "The job is no longer in Redis's failed list (expired or requeued already): nothing to requeue.")
    return Done(True, "requeued")


def cancel(row: BackgroundJob) -> Done:
    if row.state != State.PENDING:
        return Done(False, f"Only a pending job can be cancelled; this one is {row.state}.")
    from .outbox_ends import mark_cancelled

    job = _redis_job(row)
    if job is None:
        # Redis lost it: closing the row is the whole cancel (else the reconciler re-sends it).
        mark_cancelled([row.id], "cancelled by an operator (task browser)", strict=True)
        return Done(True, "cancelled (the job was not in Redis)")
    status = _status(job)
    if status == "started":
        return Done(False, "The job is running: stop it instead.")
    if status not in ("queued", "scheduled", "deferred"):
        return Done(False, f"Redis says the job is {status or 'in no state'}: its end is being recorded, nothing to cancel.")
    job.cancel()  # jobclass.QueueingJob.cancel closes the row as cancelled first
    return Done(True, "cancelled")


def stop(row: BackgroundJob) -> Done:
    if row.state != State.PENDING:
        return Done(False, f"Only a running job can be stopped; this one is {row.state}.")
    from django_rq.utils import stop_jobs

    job = _redis_job(row)
    status = _status(job) if job is not None else "absent"
    if status != "started" or not job.worker_name:
        return Done(False, f"The job is not running (Redis: {status}); a pending job is cancelled, not stopped.")
    stopped, _ = stop_jobs(_queue_of(row), [row.id])
    if not stopped:
        return Done(False, "The stop command could not be sent to the job's worker.")
    return Done(True, f"stop sent to worker {job.worker_name}")


OPERATIONS = {"requeue": requeue, "cancel": cancel, "stop": stop}


def act(action: str, job_id: str, username: str) -> Done:
    """Run one safe action on a row; a success is recorded in the row's `actions`."""
    row = BackgroundJob.objects.get(pk=job_id)
    try:
        done = OPERATIONS[action](row)
    except Exception as exc:  # Redis away or its data unreadable: said, nothing recorded
        logger.exception("task browser: %s of job %s failed", action, job_id)
        return Done(False, f"The {action} failed: {type(exc).__name__}.")
    if done.ok:
        record_action(job_id, action, username, done.message)
    return done
