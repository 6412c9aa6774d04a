"""One end condition for "nothing twice": count effects only once nothing can still add one.

`settle()` waits until, continuously for QUIET seconds, the outbox has no pending row, every
queue (and its intermediate list), the started, scheduled and deferred registries are empty, no
worker is busy and no running job's liveness claim is held. QUIET is a full reconciler cycle:
a row older than MIN_AGE, seen twice MISSING_AFTER apart, re-sent on the next scheduler pass
(app/queueing/outbox.py, app/queueing/scheduling.py PASS_INTERVAL), plus a second to spare.
A late copy (a retry, a thawed worker, a reconciler re-send, an orphaned horse) shows up in one
of those places, or has written its effect, before the window closes; a fixed sleep would let a
slow machine's late copy slip past and pass wrongly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from app.queueing import keys
from app.queueing.outbox import MIN_AGE, MISSING_AFTER
from app.queueing.scheduling import PASS_INTERVAL

QUIET = MIN_AGE.total_seconds() + MISSING_AFTER + PASS_INTERVAL + 1
POLL = 0.25

_QUEUE_PATTERNS = ("rq:queue:*", "rq:wip:*", "rq:scheduled:*", "rq:deferred:*", keys.running("*"))


def busy(connection: redis.Redis) -> list[str]:
    """What still holds work: non-empty queues and registries, busy workers, held claims."""
    found: list[str] = []
    for pattern in _QUEUE_PATTERNS:
        for key in connection.scan_iter(pattern):
            kind = connection.type(key)
            size = {b"list": connection.llen, b"zset": connection.zcard, b"set": connection.scard}.get(kind)
            if size is None:
                if kind != b"none":  # a claim key (a string): held
                    found.append(key.decode())
            elif size(key):
                found.append(f"{key.decode()} ({size(key)})")
    for key in connection.scan_iter("rq:worker:*"):
        if connection.type(key) == b"hash" and connection.hget(key, "state") == b"busy":
            found.append(f"{key.decode()} busy")
    return found


def outbox_pending(database_url: str | None = None) -> Callable[[], int]:
    """The outbox's pending rows: of a stack's database, or (None) this process's Django database."""
    if database_url is not None:
        from tests.e2e.databases import query

        return lambda: int(query(database_url, "select count(*) from egoejo_backgroundjob where state = 'pending'")[0][0])

    def count() -> int:
        from app.queueing.models import BackgroundJob

        return BackgroundJob.objects.filter(state=BackgroundJob.State.PENDING).count()

    return count


def settle(
    connection: redis.Redis,
    pending: Callable[[], int],
    timeout: float = 240,
    quiet: float = QUIET,
    describe: Callable[[], str] = lambda: "",
) -> float:
    """Wait until nothing is pending anywhere for `quiet` seconds; return the seconds waited.

    Fails (AssertionError, with what still holds work) if that does not happen within `timeout`.
    """
    started = time.monotonic()
    quiet_since: float | None = None
    holding: list[str] = []
    while True:
        now = time.monotonic()
        rows = pending()
        holding = busy(connection) + ([f"{rows} pending outbox row(s)"] if rows else [])
        if holding:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= quiet:
            return now - started
        if now - started > timeout:
            raise AssertionError(f"not settled in {timeout} s: {holding}\n{describe()}")
        time.sleep(POLL)


