"""The compatibility gate: every private name of rq, rq-scheduler, redis-py and rq-dashboard, and every `rq:` key.

No module outside this package names an underscore attribute of those libraries (or of
django-rq, which needs none but is version-gated here too), imports an underscore name from them, or spells an `rq:` key:
tests/test_layout.py fails if one does. Each library's privates are pinned to the version they
were verified against (version.py), and tests/test_rq_compat.py runs each against the library's
own code path. Every name other modules use is re-exported here: `rq_compat.queue_key(...)`.

What is here, by what it does:
- version.py: RQ's version gate and the others'. `fast_paths()` is True only with rq ==
  VERIFIED_RQ_VERSION (checked at import) and QUEUEING_FAST_PATHS on (RQ_FAST_PATHS=1): otherwise
  every fast path below takes RQ's own code path, and the reason is logged once. The other
  libraries have no second path; a `LibraryGate` per library logs once on an unverified version.
- keys.py: RQ's key formats (queues, registries, workers, executions).
- operations.py: RQ's private operations (requeue at the front, a worker's stop flag, a job's
  return value and callback names, retiring a worker, killing its scheduler child, the claim of
  a popped job's push and the take-back of a push its popper never claimed).
- push.py (fast path): `push_if_absent`, one Lua script per batch, never a job pushed twice.
- bookkeeping.py (fast paths): functions the worker's FastBookkeeping collaborator calls: the
  in-process worker's per-job bookkeeping in 4 round trips instead of 11, plus the claim (`fast_execute_job`,
  `fast_job_success`, `record_success`); heartbeats and the suspension check coalesced.
- speedups.py (fast path): `install_speedups`, RQ's serializer resolution remembered and its
  timestamp format parsed with fromisoformat.
- json_only.py (always on, not a fast path): `install_json_only`, RQ's default serializer reads
  and writes JSON, never pickle; unreadable job data and fields read as marked, never raise.
- scheduler.py: rq-scheduler's `Scheduler._interval` and `_lock_acquired` (scheduling.py).
- redis_py.py: redis-py's pool connections and sockets, let go of in a forked child (process_tree.py).
- dashboard.py: rq-dashboard's serializer setting and the Redis client it leaves on the app (dashboard.py).
- logs.py: RQ's own log lines for a failed attempt (its traceback at ERROR, its "N remaining"),
  filtered on its loggers: the worker logs one line of its own (`quiet_rq_failure_logs`).
- django_rq.py: django-rq's version gate (no private name: its admin pages' wrapped views, django_rq_pages.py).
"""

from __future__ import annotations

from . import dashboard, django_rq, redis_py, scheduler
from .bookkeeping import (
    BookkeepingState,
    end_with_success,
    fast_execute_job,
    fast_heartbeat,
    fast_job_success,
    fast_success_applies,
    prepared_already,
    record_success,
    state_unchanged,
    suspension_check_due,
)
from .json_only import UNREADABLE_FUNC, install_json_only
from .keys import (
    ALL_QUEUES_KEY,
    SUSPENDED_KEY,
    failed_key,
    intermediate_key,
    is_worker_key,
    job_key,
    queue_key,
    scheduled_key,
    started_entry_job_id,
    started_key,
    worker_executions_key,
    worker_key,
    workers_of_queue_key,
)
from .logs import RQ_FAILURE_LINES_FILTER, RQ_FAILURE_LOGGERS, RQ_FAILURE_TRACEBACK, RQ_RETRY_LINES, quiet_rq_failure_logs
from .operations import (
    CLAIMED_PUSH_FIELD,
    asynchronous,
    callback_names,
    claim_popped,
    forget_worker_state,
    is_intermediate_cleanup,
    pops_into_intermediate,
    requeue_at_front,
    retire_worker,
    return_value_of,
    set_stop_requested,
    shutdown_requested,
    stop_requested,
    stop_scheduler_child,
    take_back_popped,
)
from .push import _SCRIPT_SHA, PER_CALL_FIELDS, push_if_absent
from .speedups import _original_resolve, _original_utcparse, install_speedups, resolve_serializer, utcparse
from .version import VERIFIED_RQ_VERSION, fast_paths

__all__ = [
    "ALL_QUEUES_KEY",
    "SUSPENDED_KEY",
    "is_worker_key",
    "PER_CALL_FIELDS",
    "RQ_FAILURE_LINES_FILTER",
    "RQ_FAILURE_LOGGERS",
    "RQ_FAILURE_TRACEBACK",
    "RQ_RETRY_LINES",
    "UNREADABLE_FUNC",
    "VERIFIED_RQ_VERSION",
    "_SCRIPT_SHA",
    "BookkeepingState",
    "end_with_success",
    "fast_execute_job",
    "fast_heartbeat",
    "fast_job_success",
    "fast_success_applies",
    "prepared_already",
    "record_success",
    "state_unchanged",
    "suspension_check_due",
    "_original_resolve",
    "_original_utcparse",
    "CLAIMED_PUSH_FIELD",
    "asynchronous",
    "callback_names",
    "claim_popped",
    "dashboard",
    "django_rq",
    "failed_key",
    "fast_paths",
    "forget_worker_state",
    "install_json_only",
    "install_speedups",
    "intermediate_key",
    "is_intermediate_cleanup",
    "job_key",
    "pops_into_intermediate",
    "push_if_absent",
    "queue_key",
    "quiet_rq_failure_logs",
    "redis_py",
    "requeue_at_front",
    "resolve_serializer",
    "retire_worker",
    "return_value_of",
    "scheduled_key",
    "scheduler",
    "set_stop_requested",
    "shutdown_requested",
    "started_entry_job_id",
    "started_key",
    "stop_requested",
    "stop_scheduler_child",
    "take_back_popped",
    "utcparse",
    "worker_executions_key",
    "worker_key",
    "workers_of_queue_key",
]
