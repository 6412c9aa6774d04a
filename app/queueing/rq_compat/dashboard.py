"""rq-dashboard's module state, set and read by the project's wrapper (app/queueing/dashboard.py).

rq-dashboard 0.9 reads the serializer of every Queue and Job it builds from its module-level
`rq_dashboard.web.config.serializer` (no Flask setting for it), and its `setup_rq_connection`
leaves the Redis client on the Flask app as `app.redis_conn`. Neither is documented: both are
checked against rq-dashboard's own code in tests/test_rq_compat.py.
"""

from __future__ import annotations

from typing import Any

from .version import LibraryGate

VERIFIED_RQ_DASHBOARD_VERSION = "0.9.0"
GATE = LibraryGate("rq-dashboard", VERIFIED_RQ_DASHBOARD_VERSION, "rq_dashboard.web.config.serializer, app.redis_conn")


def use_serializer(serializer: Any) -> None:
    """Every Queue and Job rq-dashboard builds in this process uses `serializer`."""
    from rq_dashboard.web import config

    GATE.check()
    config.serializer = serializer


def redis_connection(app: Any) -> Any:
    """The Redis client rq-dashboard's setup_rq_connection left on `app`."""
    GATE.check()
    return app.redis_conn
