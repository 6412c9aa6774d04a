"""The one serializer of job data, meta and results: JSON both ways, and never anything else.

Whatever Redis holds is read as JSON or not at all: a pickle, or any bytes that are not JSON,
read as an `Unreadable` marker (a dict that says so), never as an error a page would answer 500
with and never as code. Every reader in every process uses it: the queues (settings.RQ_QUEUES),
the job class, the workers, the scheduler, the sweeps, the dashboards, and, through
`rq_compat.install_json_only`, every reader that asks RQ for its default serializer (django-rq's
worker pages, rq-dashboard's job actions, rq-scheduler). tests/security/test_redis_readers.py
plants a pickle that would run a command in every field and opens every page that reads jobs.
"""

from __future__ import annotations

import json
from typing import Any


class Unreadable(dict[str, str]):
    """What a field that is not JSON reads as: a dict (pages and `meta.get` keep working) that says so."""

    def __init__(self, size: int) -> None:
        super().__init__(unreadable=f"not JSON ({size} bytes): shown and run as nothing")


class JobSerializer:
    """RQ's serializer protocol: JSON out, JSON in, an `Unreadable` marker for anything else."""

    @staticmethod
    def dumps(obj: Any, *args: Any, **kwargs: Any) -> bytes:
        return json.dumps(obj, *args, **kwargs).encode("utf-8")

    @staticmethod
    def loads(data: bytes | str, *args: Any, **kwargs: Any) -> Any:
        try:
            return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data, *args, **kwargs)
        except (UnicodeDecodeError, ValueError, TypeError, RecursionError):
            return Unreadable(len(data) if isinstance(data, (bytes, str)) else 0)
