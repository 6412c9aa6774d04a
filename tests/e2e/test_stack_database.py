"""A process stack runs on the configured database's kind: PostgreSQL (a database of its own,
dropped at the test's end) when the run's DATABASE_URL names it, as under CI; SQLite elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import redis_db
from tests.ci import under_ci
from tests.e2e import databases
from tests.e2e.processes import manage, stack_env

pytestmark = pytest.mark.e2e


def test_under_ci_the_stacks_run_on_postgresql(tmp_path: Path, redis_db_index: int) -> None:
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index)
    if under_ci():
        assert env["DATABASE_URL"].startswith(("postgres://", "postgresql://")), env["DATABASE_URL"]
    elif databases.server_url() is None:
        assert env["DATABASE_URL"] == f"sqlite:///{tmp_path / 'e2e.sqlite3'}"
    if env["DATABASE_URL"].startswith("sqlite:"):
        manage(env, "migrate", "--noinput")  # a SQLite stack's file is new: each test migrates it
    # The stack's own processes see that database, migrated.
    vendor = manage(env, "shell", "-c", "from django.db import connection; print(connection.vendor)").stdout.split()[-1]
    assert vendor == ("sqlite" if env["DATABASE_URL"].startswith("sqlite:") else "postgresql")
    assert databases.query(env["DATABASE_URL"], "select count(*) from egoejo_backgroundjob") == [(0,)]


def test_each_stack_has_a_database_of_its_own_dropped_at_the_end(tmp_path: Path, redis_db_index: int) -> None:
    if databases.server_url() is None:
        pytest.skip("the run's DATABASE_URL is not PostgreSQL: stacks use a SQLite file in tmp_path")
    since = databases.mark()
    first = stack_env(tmp_path / "a", redis_db.redis_url(), redis_db_index)["DATABASE_URL"]
    second = stack_env(tmp_path / "b", redis_db.redis_url(), redis_db_index)["DATABASE_URL"]
    assert first != second
    names = {first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]}
    databases.drop_created(since)
    server = databases.server_url()
    assert server is not None
    listed = {name for (name,) in databases.query(server, "select datname from pg_database")}
    assert not names & listed
