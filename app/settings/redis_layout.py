"""One Redis server, three logical databases: channels, cache and queues never share one.

Everything is derived from REDIS_URL so that a deployment sets one variable; the database
indexes can be moved with REDIS_CHANNELS_DB / REDIS_CACHE_DB / RQ_REDIS_DB.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class RedisLayout:
    base_url: str
    channels_db: int
    cache_db: int
    queues_db: int

    def url_for(self, db: int) -> str:
        parts = urlsplit(self.base_url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))

    @property
    def channels_url(self) -> str:
        return self.url_for(self.channels_db)

    @property
    def cache_url(self) -> str:
        return self.url_for(self.cache_db)

    @property
    def queues_url(self) -> str:
        return self.url_for(self.queues_db)


def with_credentials(redis_url: str, username: str | None, password: str | None) -> str:
    """REDIS_URL with this process's ACL user (REDIS_USERNAME / REDIS_PASSWORD) in place of any it names.

    Each process connects as its role's user (deploy/redis/roles.acl): the host and port are shared,
    the credentials are not, so they come in their own variables and one service's env never holds
    another's password."""
    if username is None and password is None:
        return redis_url
    parts = urlsplit(redis_url)
    host = parts.netloc.rpartition("@")[2]
    userinfo = quote(username or "", safe="") + (f":{quote(password, safe='')}" if password is not None else "")
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


def build_layout(redis_url: str, channels_db: int, cache_db: int, queues_db: int) -> RedisLayout:
    parts = urlsplit(redis_url)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"REDIS_URL must be a redis://, rediss:// or unix:// URL, not {redis_url!r}.")
    for name, db in (("channels", channels_db), ("cache", cache_db), ("queues", queues_db)):
        if not 0 <= db <= 15:
            raise ImproperlyConfigured(f"The {name} Redis DB must be between 0 and 15, not {db}.")
    # Queues sharing a DB with the cache would let a cache eviction or `cache.clear()`
    # (FLUSHDB) silently drop queued jobs: refuse to start rather than lose work later.
    if queues_db in (cache_db, channels_db):
        raise ImproperlyConfigured(
            f"The queues' Redis DB ({queues_db}) must differ from the cache DB ({cache_db}) "
            f"and the channels DB ({channels_db}); set RQ_REDIS_DB to a free index."
        )
    if cache_db == channels_db:
        raise ImproperlyConfigured(f"The cache and channels Redis DBs must differ (both are {cache_db}).")
    base = urlunsplit((parts.scheme, parts.netloc, "", parts.query, ""))
    return RedisLayout(base_url=base, channels_db=channels_db, cache_db=cache_db, queues_db=queues_db)


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """"host:port,host:port" → [(host, port), ...]"""
    sentinels = []
    for item in value.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ImproperlyConfigured(f"REDIS_SENTINELS must be host:port[,host:port...], not {value!r}.")
        sentinels.append((host, int(port)))
    return sentinels


def sentinel_url(sentinels: list[tuple[str, int]], master: str, db: int) -> str:
    """The redis+sentinel:// form rq-dashboard understands."""
    hosts = ",".join(f"{host}:{port}" for host, port in sentinels)
    return f"redis+sentinel://{hosts}/{master}/{db}"
