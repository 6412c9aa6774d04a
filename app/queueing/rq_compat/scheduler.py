"""rq-scheduler's private names: the attributes of its `Scheduler` the project's subclass reads and sets.

rq-scheduler 0.14 keeps its pass interval in `Scheduler._interval` (no public accessor) and
whether this process holds its lock in `Scheduler._lock_acquired`, which its own `remove_lock`
and run loop read; `ProjectScheduler` (scheduling.py) overrides taking and releasing the lock
and keeps that flag as rq-scheduler does. tests/test_rq_compat.py checks both on rq-scheduler's
own objects and code paths.
"""

from __future__ import annotations

from typing import Any

from .version import LibraryGate

VERIFIED_RQ_SCHEDULER_VERSION = "0.14.0"
GATE = LibraryGate("rq-scheduler", VERIFIED_RQ_SCHEDULER_VERSION, "Scheduler._interval, Scheduler._lock_acquired")


def interval_of(scheduler: Any) -> Any:
    """Seconds between two passes of rq-scheduler's loop (its `interval` argument)."""
    GATE.check()
    return scheduler._interval


def holds_lock(scheduler: Any) -> bool:
    """Whether rq-scheduler believes this scheduler holds its lock."""
    GATE.check()
    return bool(scheduler._lock_acquired)


def set_holds_lock(scheduler: Any, acquired: bool) -> None:
    GATE.check()
    scheduler._lock_acquired = acquired
