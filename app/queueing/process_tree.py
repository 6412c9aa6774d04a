"""Every child of a worker process dies with it, and none keeps a copy of its Redis connection.

A worker forks three kinds of children: work-horses (RQ's forking worker, one per job), RQ's
scheduler child (`--with-scheduler`), and, in `rqpool`, the pool's worker processes. Left to
themselves, all of them outlive a SIGKILLed parent:

- an orphaned pool member or scheduler keeps taking jobs, or keeps moving them, for a worker
  that no longer exists, while `restart: always` starts a second copy beside it;
- worse, a child forked while the parent held a Redis socket holds a copy of that socket. When
  the parent dies inside a blocking pop (BLPOP/BLMOVE), the socket stays open in the child, so
  Redis keeps the dead worker's pop waiting and hands it the next job: popped, run by nobody.

So, right after every fork (os.register_at_fork, in the child):
1. the kernel is asked to SIGKILL the child when the thread that forked it dies
   (PR_SET_PDEATHSIG); a parent that died before the call is caught by comparing getppid();
2. unless the child is a work-horse (RQ's horse runs its job on the parent's connection while
   the parent waits), the child closes its copies of the parent's Redis sockets. Closing, not
   shutting down: the parent's own socket is untouched (redis-py shuts a socket down only in
   the process that opened it). The children build their own connections (RQ's scheduler and
   pool members do), so they never need the parent's.

The parent thread must be the one that forks (RQ forks from its main thread): PR_SET_PDEATHSIG
follows the forking thread, not the process.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import rq_compat

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1

# Per process (a child starts with a copy, then clears it): what the next fork's child lets go of.
_parent_connections: list[Any] = []
_forking_horse = threading.local()
_parent_pid = 0
_registered = False


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies; exit now if it already has."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        logger.warning("could not tie this child's life to its parent (not Linux?)")
        return
    if os.getppid() != parent_pid:  # the parent died between fork() and prctl(): die as the signal would have
        os.kill(os.getpid(), signal.SIGKILL)


def release_connection(client: Any) -> None:
    """Close this process's copies of `client`'s sockets (inherited across fork) without shutdown."""
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return
    for connection in rq_compat.redis_py.pool_connections(pool):
        sock = rq_compat.redis_py.detach_socket(connection)
        if sock is None:
            continue
        try:
            sock.close()  # our file descriptor only: the parent's socket stays open and usable
        except OSError:
            pass
    # The pool object itself is the parent's: the child must build its own (RQ's children do).
    try:
        pool.reset()
    except Exception:  # noqa: BLE001 - best effort in a just-forked child
        pass


def install(connection: Any) -> None:
    """In a process that forks workers, schedulers or horses: tie every child to it (see module doc)."""
    global _registered
    rq_compat.redis_py.GATE.check()  # here, in the parent: a child inherits the answer instead of looking it up
    if all(existing is not connection for existing in _parent_connections):
        _parent_connections.append(connection)
    if not _registered:
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        _registered = True


@contextmanager
def forking_horse() -> Iterator[None]:
    """Around RQ's fork of a work-horse: the horse keeps the parent's connection (RQ runs it on it)."""
    _forking_horse.active = True
    try:
        yield
    finally:
        _forking_horse.active = False


def _before_fork() -> None:
    global _parent_pid
    _parent_pid = os.getpid()


def _after_fork_in_child() -> None:
    die_with_parent(_parent_pid)
    if not getattr(_forking_horse, "active", False):
        for client in _parent_connections:
            release_connection(client)
    _forking_horse.active = False
    _parent_connections.clear()  # what this child forks later, it ties with its own install()
