"""What a job's attempts came to: each failure's error, how many times it ran, what it returned.

RQ 3.0 keeps a result only for a job's last attempt (a retried failure writes none), and only
for the queue's result/failure TTL. The standard task API (tasks_backend.py) answers with every
attempt's error and keeps its answer for as long as the outbox keeps the row (outbox.KEEP_ENDED):

- `note_failure` (RQ's exception handler, workers.classify_failure) appends each failure to the
  job's meta, in memory: RQ writes the meta with the retry it schedules, in the same round trip;
- `of` is written by the worker with the row's end (ends.mark_ended), in the same UPDATE.

No round trip of its own on any path (tests/test_tasks_api.py: the retry's errors, the answer
after the TTL).
"""

from __future__ import annotations

import json
import traceback as tb_module
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import rq_compat

if TYPE_CHECKING:
    from rq.job import Job

MAX_TRACEBACK = 4_000  # characters of each attempt's traceback kept (its end: where it failed)
MAX_RETURN_BYTES = 64 * 1024  # a larger return value is not copied into the row (RQ's result keeps it for its TTL)
UNKNOWN_WORKER = "unknown"  # an attempt whose worker died under it: no error, and no name recorded


def note_failure(job: Job, exc_type: type[BaseException], exc_value: BaseException, traceback: TracebackType | None) -> None:
    errors: list[dict[str, str]] = job.meta.setdefault("errors", [])
    errors.append({
        "exception_class_path": f"{exc_type.__module__}.{exc_type.__qualname__}",
        "traceback": "".join(tb_module.format_exception(exc_type, exc_value, traceback))[-MAX_TRACEBACK:],
        "worker": job.worker_name or "",
    })


def errors_of(job: Job) -> list[dict[str, str]]:
    return list(job.meta.get("errors") or [])


def worker_ids(job: Job, *, running_or_succeeded: bool) -> list[str]:
    """One entry per attempt: each failure's worker, each death's, then the current or last one's."""
    ids = [error.get("worker") or UNKNOWN_WORKER for error in errors_of(job)]
    ids += [UNKNOWN_WORKER] * int(job.meta.get("abandoned") or 0)  # recovery.py's count of deaths
    if running_or_succeeded:
        ids.append(job.worker_name or UNKNOWN_WORKER)
    return ids


def of(job: Job, *, succeeded: bool) -> dict[str, Any]:
    """The row's copy of the job's end: errors, attempts' workers and, on success, the return value."""
    outcome: dict[str, Any] = {
        "errors": errors_of(job),
        "workers": worker_ids(job, running_or_succeeded=succeeded),
        "started_at": job.started_at.isoformat() if job.started_at else None,  # the last attempt's
    }
    if succeeded:
        value = rq_compat.return_value_of(job)
        try:
            fits = len(json.dumps(value, allow_nan=False)) <= MAX_RETURN_BYTES
        except (TypeError, ValueError):
            fits = False
        if fits:
            outcome["return_value"] = value
    return outcome
