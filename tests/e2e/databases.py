"""The database of a real-process stack: the configured one's kind, fresh for each stack.

Where the test run's own DATABASE_URL names PostgreSQL (CI's, scripts/test under CI=true), every
stack gets a database of its own on that server, copied from a template migrated once per session
(CREATE DATABASE ... TEMPLATE: a fraction of a second), and dropped when the test ends
(tests/conftest.py's `stack_databases` fixture); elsewhere a SQLite file in the test's tmp_path.
So the outbox/reconciler/worker races production's PostgreSQL allows (concurrent writers) happen
in the tests that claim to rule them out. Held by tests/e2e/test_stack_database.py.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]

_created: list[str] = []  # databases made for the running test, dropped at its end
_template: str | None = None


def server_url() -> str | None:
    """The PostgreSQL server of this test run's DATABASE_URL, or None (SQLite stacks)."""
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(url: str) -> Any:
    import psycopg

    return psycopg.connect(_with_database(url, "postgres"), autocommit=True, connect_timeout=10)


def _ensure_template(url: str) -> str:
    """A database migrated once for this session, copied for each stack."""
    global _template
    if _template is None:
        name = f"stack_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with _admin(url) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_SETTINGS_MODULE"))}
        env.update(DATABASE_URL=_with_database(url, name), DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_CONN_MAX_AGE="0")
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
        _template = name
    return _template


def stack_database_url(tmp_path: Path) -> str:
    """The DATABASE_URL for one stack: a fresh PostgreSQL database, or a SQLite file under tmp_path."""
    url = server_url()
    if url is None:
        return f"sqlite:///{tmp_path / 'e2e.sqlite3'}"
    template = _ensure_template(url)
    name = f"stack_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with _admin(url) as connection:
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    _created.append(name)
    return _with_database(url, name)


def mark() -> int:
    return len(_created)


def drop_created(since: int = 0) -> None:
    """Drop the stacks' databases made since `mark()` (their processes may still hold a connection)."""
    url = server_url()
    if url is None or len(_created) <= since:
        return
    with _admin(url) as connection:
        while len(_created) > since:
            connection.execute(f'DROP DATABASE IF EXISTS "{_created.pop()}" WITH (FORCE)')


def drop_template() -> None:
    global _template
    url = server_url()
    if url is None or _template is None:
        return
    with _admin(url) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{_template}" WITH (FORCE)')
    _template = None


def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one read-only statement on a stack's database (plain SQL both engines accept)."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
            return connection.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as connection:
        return [tuple(row) for row in connection.execute(sql).fetchall()]  # type: ignore[arg-type]


def seconds_since(database_url: str, column: str) -> str:
    """SQL for the seconds since a timestamp column, in the stack's engine's dialect."""
    if database_url.startswith("sqlite:"):
        return f"(julianday('now') - julianday({column})) * 86400"
    return f"extract(epoch from now() - {column})"


PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")


@contextmanager
def private_pg_database(prefix: str, needed_for: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for a test that must run on PostgreSQL (a PaaS's, the
    tracing's psycopg spans), dropped at the end; the test skips without a server (a failure
    under CI: tests/ci.py)."""
    import psycopg
    import pytest

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is needed for {needed_for}: {exc}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
