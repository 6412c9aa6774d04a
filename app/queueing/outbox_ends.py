"""An outbox row's end: finished, failed or cancelled. Final: only a pending row is closed
(a failed one may still finish, once an operator requeued it). And a retry's ledger write.

Each is one UPDATE: the ledger's columns (outcomes.ledger) ride with the end, never a statement
of their own (tests/test_ledger.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import DatabaseError
from django.db.models.functions import Now

from .models import BackgroundJob

logger = logging.getLogger(__name__)

State = BackgroundJob.State


def mark_ended(
    job_id: str, *, failed: bool, reason: str = "", outcome: dict[str, Any] | None = None, ledger: dict[str, Any] | None = None,
    replace_failure: bool = False,
) -> None:
    """Record a job's final state; called from the worker. Never raises: the job's own outcome
    is in Redis, and the reconciler closes a row whose mark was missed.

    `ledger`: outcomes.ledger(job), written in the same UPDATE (no retry waits any more).
    `replace_failure`: a worker's failure of a job an operator requeued replaces its earlier one."""
    # A failed job that an operator requeued may still finish: that end replaces its failure, and
    # so may a worker's new failure of it (its attempts added).
    extra = {} if ledger is None else {**ledger, "next_retry_at": None}
    from_states = (State.PENDING,) if failed and not replace_failure else (State.PENDING, State.FAILED)
    _close([job_id], State.FAILED if failed else State.FINISHED, reason, from_states=from_states, outcome=outcome, extra=extra)


def mark_retrying(job_id: str, ledger: dict[str, Any], next_retry_at: datetime | None) -> None:
    """A failed attempt that RQ retries: the pending row's ledger (attempts, history, last error)
    and when it runs again, in one UPDATE. An ended row is never reopened. Never raises."""
    try:
        BackgroundJob.objects.filter(id=job_id, state=State.PENDING).update(**ledger, next_retry_at=next_retry_at)
    except DatabaseError:
        logger.exception("could not record the retry of job %s in its ledger", job_id)


def mark_cancelled(job_ids: Iterable[str], reason: str, *, strict: bool = False) -> None:
    """An operator's cancel, stop or delete: final, the reconciler never re-sends it.

    `strict`: let a database error propagate, for a page that must then refuse the delete (the
    job, deleted from Redis with its row still pending, would be re-sent)."""
    _close(list(job_ids), State.CANCELLED, reason, strict=strict)


def _close(
    job_ids: list[str], state: str, reason: str, from_states: tuple[str, ...] = (State.PENDING,), *, strict: bool = False,
    outcome: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
) -> int:
    if not job_ids:
        return 0
    extra = dict(extra or {})
    if outcome is not None:
        extra["outcome"] = outcome
    try:
        return BackgroundJob.objects.filter(id__in=job_ids, state__in=from_states).update(
            state=state, failure_reason=reason[:2000], ended_at=Now(), **extra
        )
    except DatabaseError:
        if strict:
            raise
        logger.exception("could not record the end (%s) of job(s) %s", state, ", ".join(job_ids[:5]))
        return 0

