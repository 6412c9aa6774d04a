"""What every benchmark shares: Django set-up, a private Redis DB, medians and ratio tables."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition: checks that it still works")
    parser.add_argument(
        "--smoke", action="store_true", help="the smallest sizes (implies --quick): only that the area runs (tests/test_bench.py)"
    )
    args = parser.parse_args()
    args.quick = args.quick or args.smoke
    return args


def run_size(args: argparse.Namespace, full: T, quick: T, smoke: T) -> T:
    """The run's size: `full`, or `quick` under --quick, or `smoke` under --smoke (figures meaningless)."""
    return smoke if args.smoke else quick if args.quick else full


def setup_django(**env: str) -> None:
    """Load the project with benchmark-friendly defaults (any variable already set wins)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("EMAIL_URL", "locmem://")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("QUEUEING_JOB_MODULES", "benchmarks.lib.jobs")
    for key, value in env.items():
        os.environ.setdefault(key, value)
    import django

    django.setup()


def median(values: list[float]) -> float:
    return statistics.median(values)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rq_time(raw: bytes) -> float:
    """Seconds since the epoch of a time RQ wrote in a job's hash (enqueued_at, ended_at)."""
    return datetime.fromisoformat(raw.decode().replace("Z", "+00:00")).timestamp()


def timed(func: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock seconds of `repeat` calls."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        samples.append(time.perf_counter() - started)
    return samples


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def ratio(baseline: float, value: float) -> str:
    """How many times better `value` is than `baseline` (both durations: lower is better)."""
    return f"{baseline / value:.1f}x" if value else "inf"


@contextmanager
def private_redis_db(url: str = "redis://127.0.0.1:6379") -> Iterator[int]:
    """An empty Redis DB for the benchmark's queues, claimed like the tests do and flushed after."""
    sys.path.insert(0, str(ROOT))
    from tests import redis_db

    os.environ.setdefault("TEST_REDIS_URL", url)
    db = redis_db.claim_empty_db()
    try:
        yield db
    finally:
        redis_db.release_db(db)


@contextmanager
def private_pg_database(name: str) -> Iterator[str]:
    """A fresh PostgreSQL database for a benchmark (BENCH_PG_URL names the server's admin
    database); yields its URL, and drops it at the end, closing Django's connections first."""
    import psycopg

    admin_url = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
