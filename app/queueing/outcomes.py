"""What a job's attempts came to: each failure's error, how many times it ran, what it returned,
and the ledger (the outbox row's attempts, history, last error; models.BackgroundJob).

RQ 3.0 keeps a result only for a job's last attempt (a retried failure writes none), and only
for the queue's result/failure TTL. The standard task API (tasks_backend.py) answers with every
attempt's error and keeps its answer for as long as the outbox keeps the row
(settings.QUEUEING_LEDGER_RETENTION_DAYS):

- `note_failure` (RQ's exception handler, workers.classify_failure) appends each failure to the
  job's meta, in memory: RQ writes the meta with the retry it schedules, in the same round trip;
- `note_death` (the abandoned-job sweep, recovery.py, or a forking worker whose work-horse died)
  appends an attempt its worker never ended, written with the sweep's own meta write or the retry;
- `of` and `ledger` are written by the worker with the row's end (outbox_ends.mark_ended), in the
  same UPDATE, and `ledger` with a retry (outbox_ends.mark_retrying).

An attempt's number is `attempt_number`: the attempts ended so far (failures and deaths) + 1, the
same in the logs, the ledger, tracing and the task API, an operator's requeue included
(tests/test_ledger.py::test_attempt_numbers_agree_in_logs_ledger_and_after_an_operators_requeue).
No round trip of its own on any path (tests/test_tasks_api.py: the retry's errors, the answer
after the TTL).
"""

from __future__ import annotations

import json
import os
import socket
import traceback as tb_module
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import rq_compat
from .errors import PermanentJobError, UndeclaredJobError

if TYPE_CHECKING:
    from rq.job import Job

MAX_TRACEBACK = 4_000  # characters of each attempt's traceback kept (its end: where it failed)
MAX_RETURN_BYTES = 64 * 1024  # a larger return value is not copied into the row (RQ's result keeps it for its TTL)
UNKNOWN_WORKER = "unknown"  # an attempt whose worker died under it: no error, and no name recorded
MAX_ERROR_LINE = 500  # characters of an attempt's one-line error (the ledger's last_error, the logs)
HOST = socket.gethostname()
# What a ledger entry holds (models.BackgroundJob.history); the meta's entries carry more (tracebacks).
HISTORY_KEYS = ("n", "started_at", "ended_at", "duration", "worker", "host", "pid", "outcome", "error")
GENERIC_FAILURE = "the job failed; we have been notified"  # what a member reads of any other failure


def note_failure(job: Job, exc_type: type[BaseException], exc_value: BaseException, traceback: TracebackType | None) -> dict[str, Any]:
    """The failed attempt, appended to the job's meta; `outcome` "failed" until the triage retries it."""
    errors: list[dict[str, Any]] = job.meta.setdefault("errors", [])
    entry: dict[str, Any] = {
        "exception_class_path": f"{exc_type.__module__}.{exc_type.__qualname__}",
        "traceback": "".join(tb_module.format_exception(exc_type, exc_value, traceback))[-MAX_TRACEBACK:],
        "worker": job.worker_name or "",
        **_attempt_times(job.started_at, _now()),
        "host": HOST,
        "pid": os.getpid(),
        "outcome": "failed",
        "error": one_line(f"{exc_type.__name__}: {_first_line(str(exc_value))}"),
    }
    if isinstance(exc_value, PermanentJobError) and not isinstance(exc_value, UndeclaredJobError):
        # The job's own words, raised on purpose: what its member may read (job_reports.py).
        entry["member_message"] = one_line(str(exc_value))
    errors.append(entry)
    return entry


def note_death(job: Job, error: str, *, worker: str | None = None, host: str | None = None, pid: int | None = None) -> None:
    """An attempt whose worker died (or was taken off it) before it could end it: outcome "abandoned".

    Appended to the job's meta; the caller's own write carries it to Redis (the sweep's meta write,
    or RQ's retry after a work-horse's death), the next row write to the ledger."""
    deaths: list[dict[str, Any]] = job.meta.setdefault("deaths", [])
    deaths.append({
        "worker": worker or job.worker_name or "", **_attempt_times(job.started_at, _now()), "host": host, "pid": pid,
        "outcome": "abandoned", "error": one_line(error),
    })


def errors_of(job: Job) -> list[dict[str, Any]]:
    return _entries(job, "errors")


def _entries(job: Job, name: str) -> list[dict[str, Any]]:
    found = job.meta.get(name) if isinstance(job.meta, dict) else None  # Redis data: untrusted input
    return [entry for entry in found if isinstance(entry, dict)] if isinstance(found, list) else []


def ended_attempts(job: Job) -> list[dict[str, Any]]:
    """Every ended attempt recorded in the meta (failures and deaths), oldest first."""
    entries = [*errors_of(job), *_entries(job, "deaths")]
    return sorted(entries, key=lambda e: str(e.get("ended_at") or ""))


def attempt_number(job: Job) -> int:
    """The number of the attempt that runs now or next: attempts ended so far + 1 (1 for the first run)."""
    return len(ended_attempts(job)) + 1


def max_attempts(job: Job) -> int:
    """The declaration's retries + 1 (signed meta, catalog.job_meta)."""
    declared = job.meta.get("max_retries")
    return (declared if isinstance(declared, int) and declared >= 0 else 0) + 1


def worker_ids(job: Job, *, running_or_succeeded: bool) -> list[str]:
    """One entry per attempt: each failure's worker, each death's, then the current or last one's."""
    ids = [
        (entry.get("worker") if entry.get("outcome") != "abandoned" else None) or UNKNOWN_WORKER
        for entry in ended_attempts(job)
    ]
    if running_or_succeeded:
        ids.append(job.worker_name or UNKNOWN_WORKER)
    return ids


def last_attempt(job: Job, outcome: str, error: str = "") -> dict[str, Any]:
    """The attempt that ends now without an exception of its own: a success, a refusal."""
    return {
        "worker": job.worker_name or "", **_attempt_times(job.started_at, job.ended_at or _now()),
        "host": HOST, "pid": os.getpid(), "outcome": outcome, "error": one_line(error),
    }


def ledger(job: Job, last: dict[str, Any] | None = None) -> dict[str, Any]:
    """The row's ledger columns from the job's meta (and the attempt ending now, if not in it)."""
    entries = ended_attempts(job) + ([last] if last is not None else [])
    history = [{key: n if key == "n" else entry.get(key) for key in HISTORY_KEYS} for n, entry in enumerate(entries, 1)]
    errors = [entry["error"] for entry in history if entry.get("error") and entry.get("outcome") != "succeeded"]
    first_start = next((entry["started_at"] for entry in history if entry.get("started_at")), None)
    return {
        "attempts": len(history),
        "started_at": _parse(first_start),
        "last_error": errors[-1] if errors else "",
        "history": history or None,
    }


def refusal_ledger(reason: str, worker_name: str) -> dict[str, Any]:
    """A refused job's ledger: the refusal alone (its hash may be a forger's: nothing read from it)."""
    entry = {"worker": worker_name, "started_at": None, "ended_at": _now().isoformat(), "duration": None,
             "host": HOST, "pid": os.getpid(), "outcome": "refused", "error": one_line(reason)}
    return {"attempts": 1, "started_at": None, "last_error": entry["error"], "history": [{"n": 1, **entry}]}


def member_reason(errors: list[dict[str, Any]] | None) -> str:
    """What a member reads of a failure: the job's own PermanentJobError words, else a plain sentence."""
    last = (errors or [{}])[-1]
    message = last.get("member_message") if isinstance(last, dict) else None
    return message if isinstance(message, str) and message else GENERIC_FAILURE


def one_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:MAX_ERROR_LINE]


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _now() -> datetime:
    return datetime.now(UTC)


def _attempt_times(started: datetime | None, ended: datetime) -> dict[str, Any]:
    if started is not None and started.tzinfo is None:
        started = started.replace(tzinfo=UTC)  # RQ's times are UTC
    if ended.tzinfo is None:
        ended = ended.replace(tzinfo=UTC)
    return {
        "started_at": started.isoformat() if started else None,
        "ended_at": ended.isoformat(),
        "duration": round((ended - started).total_seconds(), 3) if started else None,
    }


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None  # Redis data is untrusted input: a bad time is no time


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
