"""Finding a Redis database that is ours alone for a test session.

DB 15 holds the claims (so that two test runs on one Redis never share a DB); DBs 3..14
are candidates, and one that holds any key is refused rather than flushed.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import redis

CLAIMS_DB = 15
CANDIDATES = range(3, 15)
CLAIM_TTL = 3 * 3600


def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def claim_empty_db() -> int:
    claims = redis.Redis.from_url(redis_url(), db=CLAIMS_DB)
    try:
        claims.ping()
    except redis.ConnectionError as exc:
        raise RuntimeError(
            f"The tests need a Redis server at {redis_url()} ({exc}). scripts/test starts one; "
            "or set TEST_REDIS_URL."
        ) from exc
    owner = f"pid:{os.getpid()}"
    for db in CANDIDATES:
        if not claims.set(f"egoejo:test-claim:{db}", owner, nx=True, ex=CLAIM_TTL):
            continue
        if redis.Redis.from_url(redis_url(), db=db).dbsize() == 0:
            return db
        claims.delete(f"egoejo:test-claim:{db}")  # not empty: someone else's data, leave it alone
    raise RuntimeError(f"No empty Redis DB among {list(CANDIDATES)} at {redis_url()}: refusing to flush one.")


def release_db(db: int) -> None:
    redis.Redis.from_url(redis_url(), db=db).flushdb()
    redis.Redis.from_url(redis_url(), db=CLAIMS_DB).delete(f"egoejo:test-claim:{db}")


# -- the application's Redis roles, as users of the test server ------------------------------------

ROLES_FILE = Path(__file__).resolve().parents[1] / "deploy" / "redis" / "roles.acl"
# role -> (username, password) on the test Redis, for this test session (create_role_users).
ROLE_USERS: dict[str, tuple[str, str]] = {}


def create_role_users() -> dict[str, tuple[str, str]]:
    """Each role of deploy/redis/roles.acl as an ACL user of the test Redis, under a name of this
    session's (parallel runs share the server), with a random password: the processes a test
    starts connect as their role (tests/e2e/processes.py), so the suite proves the roles suffice."""
    admin = redis.Redis.from_url(redis_url())
    version = tuple(int(part) for part in str(admin.info("server")["redis_version"]).split(".")[:2])
    setinfo = ["+client|setinfo"] if version >= (7, 2) else []
    for line in ROLES_FILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        role, *rules = line.split()
        username, password = f"egoejo-{role}-t{os.getpid()}", secrets.token_hex(16)
        admin.execute_command("ACL", "SETUSER", username, "reset", "on", f">{password}", *rules, *setinfo)
        ROLE_USERS[role] = (username, password)
    return ROLE_USERS


def delete_role_users() -> None:
    if ROLE_USERS:
        redis.Redis.from_url(redis_url()).execute_command("ACL", "DELUSER", *(user for user, _ in ROLE_USERS.values()))
        ROLE_USERS.clear()
