"""rq-scheduler's private names: the attributes of its `Scheduler` the project's subclass reads and sets.

rq-scheduler 0.14 keeps its pass interval in `Scheduler._interval` (no public accessor) and
whether this process holds its lock in `Scheduler._lock_acquired`, which its own `remove_lock`
and run loop read; `ProjectScheduler` (scheduling.py) overrides taking and releasing the lock
and keeps that flag as rq-scheduler does. tests/test_rq_compat.py checks both on rq-scheduler's
own objects and code paths. `KeepsProcessSignalHandlers` turns off the signal handlers
rq-scheduler's `run()` installs (`Scheduler._install_signal_handlers`).
"""

from __future__ import annotations

from typing import Any

from .version import LibraryGate

VERIFIED_RQ_SCHEDULER_VERSION = "0.14.0"
GATE = LibraryGate("rq-scheduler", VERIFIED_RQ_SCHEDULER_VERSION, "Scheduler._interval, Scheduler._lock_acquired, Scheduler._install_signal_handlers")


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


class KeepsProcessSignalHandlers:
    """Mixed in before rq-scheduler's `Scheduler`: its `run()` installs no signal handler.

    rq-scheduler's handlers write the scheduler's death and drop its lock from inside the handler:
    with Redis away they raise a connection error into whatever the process was doing, or hang on
    a socket that never answers, and the process outlives its stop. The handlers the process
    installed itself (management/commands/rqscheduler.py) stay
    (tests/test_rq_compat.py::test_rq_schedulers_run_keeps_the_processs_own_signal_handlers).
    """

    def _install_signal_handlers(self) -> None:
        GATE.check()


def quiet_crontab_future_warning() -> None:
    """rq-scheduler 0.14's `get_next_scheduled_time` calls crontab's `next()` without `default_utc`,
    which makes crontab warn (FutureWarning) that a later crontab release will read a naive time
    as UTC. The pinned crontab keeps today's reading; rq-scheduler passes the local time and
    converts the result, and our processes run in UTC, so the warning only adds noise to every
    scheduler start (tests/test_rq_compat.py::test_crontab_warns_through_rq_scheduler_and_the_filter_quiets_it)."""
    import warnings

    warnings.filterwarnings("ignore", message=r"Version 0\.22\.0\+ of crontab", category=FutureWarning)
