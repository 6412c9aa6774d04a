"""What enqueueing adds to a view, seen by an HTTP client of gunicorn.

    scripts/bench request_path [--quick]

One gunicorn sync worker serves three registration-like views (benchmarks/web/urls.py): a user
INSERT in a transaction (served twice: the second series is an A/A control of the noise); the same plus `enqueue()` of the welcome mail (the project's path:
outbox row in the transaction, Redis push once the response has gone); and the same outbox row
pushed before the response (the previous design, for comparison). The client alternates the
three with a 5 ms pause between requests, one new connection per request (gunicorn sync closes
each), and times connect → last byte. The database is SQLite unless DATABASE_URL is set (CI and production use PostgreSQL).
"""

from __future__ import annotations

import http.client
import socket
import statistics
import subprocess
import sys
import time

from benchmarks.common import ROOT, parse_args, print_table, private_redis_db
from benchmarks.throughput import pct
from benchmarks.workers import bench_env, manage, stop

VIEWS = {
    "plain (INSERT + commit)": "/bench/plain/",
    # The same view again: how far two identical series differ here is the noise floor.
    "plain again (A/A control)": "/bench/plain/",
    "with enqueue (project: push after the response)": "/bench/enqueue/",
    "with enqueue, push before the response (previous)": "/bench/enqueue-push-in-request/",
    # Diagnostic: the project's path without its post-response push (see benchmarks/web/urls.py).
    "with enqueue, push skipped (diagnostic)": "/bench/enqueue-no-push/",
}


PAUSE = 0.005
ROUNDS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request_ms(port: int, path: str) -> float:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", path, body=b"", headers={"Host": "127.0.0.1"})
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 201, (path, response.status)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    args = parse_args(__doc__ or "")
    count = 200 if args.quick else 3000
    with private_redis_db() as db:
        env = bench_env(db, DJANGO_SETTINGS_MODULE="benchmarks.web.settings")
        manage(env, "migrate", "--noinput")
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "benchmarks.web.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    request_ms(port, "/bench/plain/")
                    break
                except (OSError, http.client.HTTPException):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            for path in VIEWS.values():  # warm-up
                for _ in range(50):
                    request_ms(port, path)
            rounds = [run_round(port, count) for _ in range(ROUNDS if not args.quick else 1)]
        finally:
            stop([server])
        database = "PostgreSQL" if env["DATABASE_URL"].startswith("postgres") else "SQLite"
        base = "plain (INSERT + commit)"

        def figure(name: str, q: float, added: bool) -> float:
            # Median over rounds of the round's percentile (or of its difference to the plain view).
            return statistics.median(pct(r[name], q) - (pct(r[base], q) if added else 0.0) for r in rounds)

        print_table(
            f"request path over HTTP, gunicorn sync x1, {database}, {count:,} requests per view and round "
            f"(interleaved), ms, median of {len(rounds)} rounds",
            ["view", "p50", "p99", "added p50", "added p99"],
            [
                [name, f"{figure(name, .5, False):.2f}", f"{figure(name, .99, False):.2f}", f"{figure(name, .5, True):+.2f}", f"{figure(name, .99, True):+.2f}"]
                for name in VIEWS
            ],
        )


def run_round(port: int, count: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in VIEWS}
    for _ in range(count):
        for name, path in VIEWS.items():
            samples[name].append(request_ms(port, path))
            # Light load, not a closed loop: with one sync worker the next request would
            # otherwise wait out whatever the previous one does after its response.
            time.sleep(PAUSE)
    return samples


if __name__ == "__main__":
    main()
