"""An outbox row's end: finished, failed or cancelled. Final: only a pending row is closed
(a failed one may still finish, once an operator requeued it). And a retry's ledger write.

Each is one UPDATE: the ledger's columns (outcomes.ledger) ride with the end, never a statement
of their own (tests/test_ledger.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import DatabaseError
from django.db.models import Func, JSONField
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
    extra = {} if ledger is None else {**_with_actions(ledger), "next_retry_at": None}
    from_states = (State.PENDING,) if failed and not replace_failure else (State.PENDING, State.FAILED)
    _close([job_id], State.FAILED if failed else State.FINISHED, reason, from_states=from_states, outcome=outcome, extra=extra)


def mark_retrying(job_id: str, ledger: dict[str, Any], next_retry_at: datetime | None) -> None:
    """A failed attempt that RQ retries: the pending row's ledger (attempts, history, last error)
    and when it runs again, in one UPDATE. An ended row is never reopened. Never raises."""
    try:
        BackgroundJob.objects.filter(id=job_id, state=State.PENDING).update(**_with_actions(ledger), next_retry_at=next_retry_at)
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


def _with_actions(ledger: dict[str, Any]) -> dict[str, Any]:
    """The ledger's columns, its history merged in the UPDATE itself with the operators' actions
    the row holds ({"action", "by", "at"}, appended by the task browser): the worker's entries
    replace its own, never an operator's
    (tests/test_ledger.py::test_attempt_numbers_agree_in_logs_ledger_and_after_an_operators_requeue)."""
    history = ledger.get("history")
    if history is None:
        return ledger
    return {**ledger, "history": HistoryKeepingActions(history)}


class HistoryKeepingActions(Func):
    """`history` := the row's operator actions + `entries`, in time order (an attempt's `ended_at`,
    an action's `at`: ISO 8601 in UTC): one expression, so the write stays one statement."""

    output_field = JSONField()

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        super().__init__()
        self.entries = json.dumps(entries)

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        column = connection.ops.quote_name("history")
        if connection.vendor == "postgresql":
            return (
                "(SELECT COALESCE(jsonb_agg(e ORDER BY k), '[]'::jsonb) FROM ("
                f"SELECT e, COALESCE(e->>'ended_at', e->>'at', '') AS k FROM jsonb_array_elements("
                f"CASE WHEN jsonb_typeof({column}) = 'array' THEN {column} ELSE '[]'::jsonb END) e WHERE e ? 'action' "
                "UNION ALL SELECT e, COALESCE(e->>'ended_at', '') FROM jsonb_array_elements(%s::jsonb) e) s)",
                [self.entries],
            )
        if connection.vendor == "sqlite":
            return (
                "(SELECT json_group_array(json(v)) FROM ("
                "SELECT value AS v, COALESCE(json_extract(value, '$.ended_at'), json_extract(value, '$.at'), '') AS k "
                f"FROM json_each(CASE WHEN json_type({column}) = 'array' THEN {column} ELSE '[]' END) "
                "WHERE json_type(value, '$.action') IS NOT NULL "
                "UNION ALL SELECT value, COALESCE(json_extract(value, '$.ended_at'), '') FROM json_each(%s) ORDER BY k))",
                [self.entries],
            )
        return "%s", [self.entries]  # another database: the worker's entries alone
