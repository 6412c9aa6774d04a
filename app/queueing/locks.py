"""A Redis key held by token: who wrote it may extend or delete it, nobody else.

A holder that outlived its key (a slow pass, a paused process) must not extend or delete the key
of whoever took it over since: both are compare-and-act Lua scripts on the token. Used by the
recovery sweep's lock, rq-scheduler's lock (scheduling.ProjectScheduler) and a member's
pending impact refresh marker (app/services/impact_refresh.py), whose token is the refresh's job id.
"""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any

# Deletes the key only if it still holds the token.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
# Renews the key's TTL only if it still holds the token.
_EXTEND = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0"


class TokenLock:
    """`key` held for `seconds` under `token` (a fresh random one unless given).

    `held` says whether this holder wrote the key (acquire or take_over) and has not released it;
    a holder whose key expired or was taken over still says held, and its extend and release are
    then no-ops on Redis. As a context manager: acquire on entry, release on exit if held
    (tests/test_declared_jobs.py::test_a_token_lock_extends_and_releases_only_while_it_holds_its_token;
    in use: test_the_sweep_lock_is_released_only_by_its_holder there and
    tests/test_schedules.py::test_a_scheduler_never_frees_the_lock_another_one_holds).
    """

    def __init__(self, connection: Any, key: str, seconds: int, token: str | None = None) -> None:
        self.connection = connection
        self.key = key
        self.seconds = seconds
        self.token = token if token is not None else uuid.uuid4().hex
        self.held = False

    def __bool__(self) -> bool:
        return self.held

    def acquire(self) -> bool:
        """Take the key if nobody holds it (SET NX EX); whether this holder has it now."""
        self.held = bool(self.connection.set(self.key, self.token, nx=True, ex=self.seconds))
        return self.held

    def take_over(self) -> None:
        """Take the key whoever holds it (SET EX)."""
        self.connection.set(self.key, self.token, ex=self.seconds)
        self.held = True

    def extend(self) -> bool:
        """Renew the key's TTL if it still holds this token; whether it did."""
        if not self.held:
            return False
        return bool(self.connection.eval(_EXTEND, 1, self.key, self.token, self.seconds))

    def release(self) -> bool:
        """Delete the key if it still holds this token; whether it did. Not held any more once
        Redis answered (a release that raised may be tried again)."""
        if not self.held:
            return False
        deleted = bool(self.connection.eval(_RELEASE, 1, self.key, self.token))
        self.held = False
        return deleted

    def __enter__(self) -> TokenLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        self.release()
