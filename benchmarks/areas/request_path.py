"""What enqueueing adds to a view, seen by an HTTP client of gunicorn, Daphne and uvicorn.

    scripts/bench request_path [--quick]

Four servers run side by side, one process each, on the same site and database: gunicorn's sync
worker (WSGI, the reference), Daphne, uvicorn, and gunicorn with uvicorn's worker class (ASGI,
app/asgi.py); access logs off everywhere. The client goes round the servers request by request, so
each sees the same machine. Each serves three registration-like views (benchmarks/lib/web/urls.py): a user
INSERT in a transaction (served twice: the second series is an A/A control of the noise); the same plus `enqueue()` of the welcome mail (the project's path:
outbox row in the transaction, Redis push once the response has gone); and the same outbox row
pushed before the response (the previous design, for comparison). The client alternates the
views with a 5 ms pause between requests, one new connection per request (gunicorn sync closes
each), and times connect → last byte. The database is SQLite unless DATABASE_URL is set (CI and production use PostgreSQL).
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import time

from benchmarks.lib.common import ROOT, parse_args, pct, print_table, private_redis_db, run_size
from benchmarks.lib.workers import bench_env, manage, stop

VIEWS = {
    "plain (INSERT + commit)": "/bench/plain/",
    # The same view again: how far two identical series differ here is the noise floor.
    "plain again (A/A control)": "/bench/plain/",
    "with enqueue (project: push after the response)": "/bench/enqueue/",
    "with enqueue, push before the response (previous)": "/bench/enqueue-push-in-request/",
    # Diagnostic: the project's path without its post-response push (see benchmarks/lib/web/urls.py).
    "with enqueue, push skipped (diagnostic)": "/bench/enqueue-no-push/",
}


# The same site under each server, one process each (docs/deploy.md#asgi has the production lines).
SERVERS = {
    "gunicorn sync (WSGI)": ["-m", "gunicorn", "benchmarks.lib.web.wsgi", "--bind", "127.0.0.1:{port}", "--workers", "1"],
    "daphne": ["-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", "{port}", "app.asgi:application"],
    "uvicorn": ["-m", "uvicorn", "app.asgi:application", "--host", "127.0.0.1", "--port", "{port}", "--lifespan", "off",
                "--no-access-log"],
    "gunicorn + uvicorn worker": ["-m", "gunicorn", "app.asgi:application", "-k", "uvicorn_worker.UvicornWorker",
                                  "--bind", "127.0.0.1:{port}", "--workers", "1"],
}
# The ASGI servers with psycopg's pool (DATABASE_POOL), as deployed: under ASGI each request has a
# thread of its own, and without a pool each opens a database connection (app/settings).
POOLED = {"daphne", "uvicorn", "gunicorn + uvicorn worker"}
POOL_SIZE = "4"

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
    pooled = os.environ.get("BENCH_DATABASE_POOL", "1") != "0"
    count = run_size(args, 1000, 200, 10)
    with private_redis_db() as db:
        env = bench_env(db, DJANGO_SETTINGS_MODULE="benchmarks.lib.web.settings")
        manage(env, "migrate", "--noinput")
        ports = {name: free_port() for name in SERVERS}
        servers = [
            subprocess.Popen(
                [sys.executable, *(arg.replace("{port}", str(ports[name])) for arg in argv)],
                cwd=ROOT, env={**env, "DATABASE_POOL": POOL_SIZE} if name in POOLED and pooled else env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for name, argv in SERVERS.items()
        ]
        try:
            for port in ports.values():
                wait_until_up(port)
            for port in ports.values():  # warm-up
                for path in VIEWS.values():
                    for _ in range(run_size(args, 50, 50, 2)):
                        request_ms(port, path)
            rounds = [run_round(ports, count) for _ in range(ROUNDS if not args.quick else 1)]
        finally:
            stop(servers)
        database = "PostgreSQL" if env["DATABASE_URL"].startswith("postgres") else "SQLite"
        base = "plain (INSERT + commit)"

        def figure(server: str, name: str, q: float, added: bool) -> float:
            # Median over rounds of the round's percentile (or of its difference to the plain view).
            return statistics.median(pct(r[server][name], q) - (pct(r[server][base], q) if added else 0.0) for r in rounds)

        for server in SERVERS:
            print_table(
                f"request path over HTTP, {server} x1, {database}, {count:,} requests per view and round "
                f"(interleaved with the other servers), ms, median of {len(rounds)} rounds",
                ["view", "p50", "p99", "added p50", "added p99"],
                [
                    [name, f"{figure(server, name, .5, False):.2f}", f"{figure(server, name, .99, False):.2f}",
                     f"{figure(server, name, .5, True):+.2f}", f"{figure(server, name, .99, True):+.2f}"]
                    for name in VIEWS
                ],
            )
        enqueue = "with enqueue (project: push after the response)"
        print_table(
            "the project's view (with enqueue) by server, ms",
            ["server", "p50", "p99", "added p50", "added p99"],
            [
                [server, f"{figure(server, enqueue, .5, False):.2f}", f"{figure(server, enqueue, .99, False):.2f}",
                 f"{figure(server, enqueue, .5, True):+.2f}", f"{figure(server, enqueue, .99, True):+.2f}"]
                for server in SERVERS
            ],
        )


def wait_until_up(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            request_ms(port, "/bench/plain/")
            return
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def run_round(ports: dict[str, int], count: int) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {server: {name: [] for name in VIEWS} for server in ports}
    for _ in range(count):
        for name, path in VIEWS.items():
            for server, port in ports.items():
                samples[server][name].append(request_ms(port, path))
                # Light load, not a closed loop: with one sync worker the next request would
                # otherwise wait out whatever the previous one does after its response.
                time.sleep(PAUSE)
    return samples


if __name__ == "__main__":
    main()
