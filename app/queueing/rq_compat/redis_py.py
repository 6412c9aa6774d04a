"""redis-py's private names: the sockets a connection pool holds, for a just-forked child to let go of.

redis-py 8.1 keeps a pool's connections in `ConnectionPool._available_connections` and
`_in_use_connections`, and a connection's socket in `Connection._sock`; no public call closes a
socket without shutting it down (`disconnect` shuts it down, which would cut the parent's
connection too). Read with getattr defaults, as before: a pool without them yields nothing.
tests/test_rq_compat.py checks the names on redis-py's own pool and connection.
"""

from __future__ import annotations

import socket
from typing import Any

from .version import LibraryGate

VERIFIED_REDIS_VERSION = "8.1.0"
GATE = LibraryGate("redis", VERIFIED_REDIS_VERSION, "ConnectionPool._available_connections, _in_use_connections, Connection._sock")


def pool_connections(pool: Any) -> list[Any]:
    """Every connection of `pool`, idle or in use."""
    GATE.check()
    return list(getattr(pool, "_available_connections", [])) + list(getattr(pool, "_in_use_connections", []))


def detach_socket(connection: Any) -> socket.socket | None:
    """Take `connection`'s socket from it (the connection then reads as not connected); None if it has none."""
    sock = getattr(connection, "_sock", None)
    if sock is not None:
        connection._sock = None
    return sock
