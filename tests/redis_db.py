"""Finding a Redis database that is ours alone for a test session.

DB 15 holds the claims (so that two test runs on one Redis never share a DB); DBs 3..14
are candidates, and one that holds any key is refused rather than flushed.
"""

from __future__ import annotations

import os

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
