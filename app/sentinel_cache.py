"""Django's Redis cache through Redis Sentinel: it follows a failover as the queues do.

Django's RedisCache connects to fixed URLs. Here the client's single connection pool is a
SentinelConnectionPool: each new connection asks the sentinels for the current master, and a
connection to a demoted master (READONLY, or gone) is dropped and re-resolved. Reads go to the
master too: a replica may lag, and the cache is small next to the queues.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class SentinelCacheClient(RedisCacheClient):
    def __init__(
        self,
        servers: list[str],
        *,
        sentinels: list[tuple[str, int]],
        master_name: str,
        db: int,
        password: str | None = None,
        sentinel_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(servers, **options)
        from redis.sentinel import Sentinel, SentinelConnectionPool

        timeouts = {k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")}
        self._sentinel = Sentinel(sentinels, sentinel_kwargs={**timeouts, **(sentinel_kwargs or {})})
        self._master_pool = SentinelConnectionPool(
            master_name, self._sentinel, db=db, password=password, check_connection=True, **self._pool_options
        )

    def _get_connection_pool(self, write: bool) -> Any:
        return self._master_pool


class SentinelRedisCache(RedisCache):
    """CACHES backend: OPTIONS sentinels=[(host, port)...], master_name, db, password (the data nodes')."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SentinelCacheClient
