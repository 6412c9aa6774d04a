"""`scripts/bench --smoke`: with no area named, every module of benchmarks/areas/ runs to its end,
each at its smallest (`--smoke`: figures meaningless; `--quick` takes minutes on this machine)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.e2e import databases

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]


def _postgres_admin_url() -> str:
    """The metrics and reconciler areas make their database on a PostgreSQL server: this run's, if any."""
    server = databases.server_url()
    if server:
        return urlunsplit(urlsplit(server)._replace(path="/postgres"))
    return os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def test_every_area_runs_at_its_smallest():
    import psycopg

    admin_url = _postgres_admin_url()
    try:
        psycopg.connect(admin_url, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"no PostgreSQL for the metrics and reconciler areas ({exc})")
    # The benchmarks' own settings and databases, as from a shell: none of the test run's.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "RQ_", "REDIS_", "EMAIL_"))}
    env["BENCH_PG_URL"] = admin_url
    result = subprocess.run(["scripts/bench", "--smoke"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    areas = sorted(path.stem for path in (ROOT / "benchmarks" / "areas").glob("*.py") if path.stem != "__init__")
    ran = [line.split("benchmark: ", 1)[1].split()[0] for line in result.stderr.splitlines() if "benchmark: " in line]
    assert ran == areas
