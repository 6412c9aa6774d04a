"""Where the queues are: django-rq's RQ_QUEUES, answered from the catalog: one connection, every declared queue.

django-rq looks queues up by name in `settings.RQ_QUEUES`. Settings cannot import the job
modules, so this mapping answers for any queue declared by the time it is asked (app loading
declares them all), plus `default`: django-rq's `enqueue(f, ...)` and `@job` without a queue go
through it, and DeclaredJobsQueue routes their jobs to the declared queue. `default` is
reachable by name but never listed, so no page or worker shows a queue that nobody serves.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class DeclaredQueues(Mapping[str, dict[str, Any]]):
    def __init__(self, connection: dict[str, Any]) -> None:
        self.connection = connection  # shared by every queue (tests repoint it)

    def __getitem__(self, name: str) -> dict[str, Any]:
        from . import catalog

        spec = catalog.queue_declared(name)  # a lookup, not a copy of the catalog: asked on every enqueue
        if spec is None and name != "default":
            raise KeyError(name)
        return {**self.connection, "DEFAULT_TIMEOUT": spec.timeout if spec is not None else None}

    def __iter__(self) -> Iterator[str]:
        from . import catalog

        return iter(sorted(catalog.queues()))

    def __len__(self) -> int:
        from . import catalog

        return len(catalog.queues())

    def __repr__(self) -> str:
        return f"DeclaredQueues({self.connection!r})"


_queues: dict[tuple[str, str], Any] = {}


def get_queue(name: str) -> Any:
    """The queue object, built once per process: django_rq.get_queue opens a new Redis
    connection pool on every call, a TCP handshake on every enqueue of a request."""
    from django.conf import settings

    key = (name, repr(settings.RQ_QUEUES[name]))  # settings may change (tests)
    queue = _queues.get(key)
    if queue is None:
        import django_rq  # here, not at import: settings import this module

        queue = _queues[key] = django_rq.get_queue(name)
    return queue


def redis_connection() -> Any:
    """The queues' Redis (all queues share it), reusing the per-process connection pool."""
    return get_queue("default").connection


_metrics_connections: dict[str, Any] = {}


def metrics_connection() -> Any:
    """The queues' Redis for /metrics: the read-only `egoejo-metrics` ACL user when
    settings.RQ_METRICS_REDIS_URL names it (deploy/redis/roles.acl), else this process's own."""
    from django.conf import settings

    url = getattr(settings, "RQ_METRICS_REDIS_URL", None)
    if not url:
        return redis_connection()
    connection = _metrics_connections.get(url)
    if connection is None:
        from redis import Redis

        connection = _metrics_connections[url] = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    return connection
