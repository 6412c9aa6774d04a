"""An outbox row's end: finished, failed or cancelled. Final: only a pending row is closed
(a failed one may still finish, once an operator requeued it)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import DatabaseError
from django.db.models.functions import Now

from .models import BackgroundJob

logger = logging.getLogger(__name__)

State = BackgroundJob.State


def mark_ended(job_id: str, *, failed: bool, reason: str = "", outcome: dict[str, Any] | None = None) -> None:
    """Record a job's final state; called from the worker. Never raises: the job's own outcome
    is in Redis, and the reconciler closes a row whose mark was missed."""
    # A failed job that an operator requeued may still finish: that end replaces its failure.
    _close(
        [job_id], State.FAILED if failed else State.FINISHED, reason,
        from_states=(State.PENDING,) if failed else (State.PENDING, State.FAILED), outcome=outcome,
    )


def mark_cancelled(job_ids: Iterable[str], reason: str, *, strict: bool = False) -> None:
    """An operator's cancel, stop or delete: final, the reconciler never re-sends it.

    `strict`: let a database error propagate, for a page that must then refuse the delete (the
    job, deleted from Redis with its row still pending, would be re-sent)."""
    _close(list(job_ids), State.CANCELLED, reason, strict=strict)


def _close(
    job_ids: list[str], state: str, reason: str, from_states: tuple[str, ...] = (State.PENDING,), *, strict: bool = False,
    outcome: dict[str, Any] | None = None,
) -> int:
    if not job_ids:
        return 0
    extra = {} if outcome is None else {"outcome": outcome}
    try:
        return BackgroundJob.objects.filter(id__in=job_ids, state__in=from_states).update(
            state=state, failure_reason=reason[:2000], ended_at=Now(), **extra
        )
    except DatabaseError:
        if strict:
            raise
        logger.exception("could not record the end (%s) of job(s) %s", state, ", ".join(job_ids[:5]))
        return 0
