"""Every key the queueing layer writes in Redis: who writes it, who reads it, how long it lives.

All of them start with `egoejo:`, the pattern the web, worker and scheduler Redis roles may write
and the metrics role may read (deploy/redis/roles.acl). RQ's own keys (`rq:...`) are spelt in
the gate alone (app/queueing/rq_compat/keys.py). The domain's keys (a member's waiting impact
refresh, the login slow-down counters) are app/services/redis_keys.py's: the layer does not name
its users' keys. No other
module spells an `egoejo:` key (tests/test_layout.py::test_egoejo_keys_are_spelt_only_in_the_keys_modules).
"""

from __future__ import annotations


def job_stats(func: str) -> str:
    """Hash of a job function's outcome counts and histograms: workers add to it (stats.add_to), /metrics reads it; no TTL."""
    return f"egoejo:jobstats:{func}"


JOB_STATS_FUNCS = "egoejo:jobstats:funcs"
"""Set of the functions that have statistics: workers add to it (stats.add_to, once a minute per process), /metrics reads it; no TTL."""

ABANDONED_REQUEUES = "egoejo:abandoned:requeues"
"""Hash queue → jobs requeued because their worker died: the sweep counts (recovery), /metrics reads (an alert on the rate); no TTL."""

REFUSED = "egoejo:refused"
"""Hash queue → jobs refused before running: workers and the scheduler count (jobclass.record_refusal), /metrics reads; no TTL."""


def running(job_id: str) -> str:
    """A worker's claim on the job it runs: its liveness thread writes it each beat (TTL liveness.LIVENESS_TTL), the worker deletes it at the job's end; the outbox reconciler and recovery.unbacked read it."""
    return f"egoejo:running:{job_id}"


def progress(job_id: str) -> str:
    """How many items a long job has done: the job writes it (recovery.report_progress, TTL twice its timeout, 120 s at least), the sweep's take-back reads and deletes it."""
    return f"egoejo:progress:{job_id}"


def stuck_seen(detector: str, job_id: str) -> str:
    """A detector's first sighting of a job that looks stuck: recovery.seen_twice writes, reads and deletes it (TTL six times the wait between sightings); the detectors delete it for jobs seen healthy."""
    return f"egoejo:stuck-seen:{detector}:{job_id}"


SWEEP_LOCK = "egoejo:abandoned-sweep"
"""The recovery sweep's token lock (locks.TokenLock): held by recovery.sweep in workers and the scheduler, TTL recovery.LOCK_SECONDS, renewed between queues."""

SCHEDULER_ALIVE = "egoejo:scheduler:alive"
"""Time of the scheduler's last heartbeat: ProjectScheduler.heartbeat writes it (TTL interval + 10 s), /healthz and /metrics read it."""

OUTBOX_CURSOR = "egoejo:outbox:cursor"
"""Id of the last outbox row of the reconciler's page: outbox.reconcile writes and reads it (TTL 1 h), deleting it after the last row."""

OUTBOX_PURGED = "egoejo:outbox:purged"
"""Mark of this hour's purge of ended outbox rows: outbox.purge_hourly sets it (SET NX, TTL 1 h) and deletes it while rows are left."""
