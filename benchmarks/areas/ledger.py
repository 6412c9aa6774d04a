"""The task browser on a big ledger: its search, a job page and the graphs, on PostgreSQL.

    scripts/bench ledger [--quick|--smoke] [--rows N]   (BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres)

Fills egoejo_bench_ledger (created here, dropped at the end) with N ledger rows (1,000,000; --quick
100,000; --smoke 2,000) in one INSERT ... SELECT FROM generate_series: created over the last 30
days, 10 functions, 3 queues, 90 % finished, 6 % failed, 2 % cancelled, 2 % pending (half of them
retrying), each with a history entry; then VACUUM ANALYZE. Timed through Django's test Client, as a
logged-in operator, each page ≥ 20 times (p50 / p95, ms; the budget is 200 ms p95, issue #30):

- the list searched by function + state + time range (`?func=&state=failed&created_at__gte=&created_at__lt=`);
- a job page (a different row each time);
- the graphs page (both windows, every queue);
- for reference: the unfiltered list, and a search of the argument text (`?q=`, a scan: docs/operations.md).

Then EXPLAIN (ANALYZE, BUFFERS) of each page's queries of the ledger, to show which index answers each,
and what the two indexes of migrations/0006_ledger_indexes.py cost an enqueue's INSERT (with them,
dropped, rebuilt).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from datetime import timedelta

from benchmarks.lib.common import parse_args, pct, print_table, private_pg_database, private_redis_db, run_size, setup_django

BENCH_DB = "egoejo_bench_ledger"
FUNCS = [f"app.jobs.bench.task_{i}" for i in range(10)]

FILL = """
INSERT INTO egoejo_backgroundjob
    (id, queue, func, args, kwargs, owner_id, state, failure_reason, created_at, due_at, ended_at, outcome,
     attempts, max_attempts, started_at, next_retry_at, last_error, history)
SELECT
    md5(g::text),
    (ARRAY['emails', 'images', 'metrics'])[1 + g %% 3],
    'app.jobs.bench.task_' || (g %% 10),
    jsonb_build_array('user' || (g %% 5000) || '@example.org', 'subject ' || g),
    '{}'::jsonb,
    CASE WHEN g %% 4 = 0 THEN NULL ELSE g %% 5000 END,
    s.state,
    CASE WHEN s.state = 'failed' THEN 'PermanentJobError: bench' ELSE '' END,
    c.created,
    NULL,
    CASE WHEN s.state = 'pending' THEN NULL ELSE c.created + interval '3 seconds' END,
    NULL,
    CASE WHEN s.state = 'pending' THEN (g %% 2) ELSE 1 + (g %% 7 = 0)::int END,
    3,
    c.created + (g %% 2000) * interval '1 millisecond',
    NULL,
    CASE WHEN s.state = 'failed' THEN 'PermanentJobError: bench' ELSE '' END,
    jsonb_build_array(jsonb_build_object('n', 1, 'worker', 'w' || (g %% 8), 'host', 'h1', 'pid', g %% 30000,
        'started_at', c.created, 'ended_at', c.created + interval '3 seconds', 'duration', 3, 'outcome', 'finished', 'error', ''))
FROM generate_series(1, %(rows)s) AS g,
LATERAL (SELECT now() - (g::float / %(rows)s) * interval '30 days' AS created) AS c,
LATERAL (SELECT CASE WHEN g %% 50 = 0 THEN 'pending' WHEN g %% 50 = 1 THEN 'cancelled'
                     WHEN g %% 50 IN (2, 3, 4) THEN 'failed' ELSE 'finished' END AS state) AS s
"""


def fill(rows: int) -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(FILL, {"rows": rows})
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE egoejo_backgroundjob")
    return time.perf_counter() - started


def timed_pages(client, pages: dict[str, object], repeat: int) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    samples: dict[str, list[float]] = {name: [] for name in pages}
    for i in range(repeat):
        for name, path in pages.items():
            url = path(i) if callable(path) else path
            started = time.perf_counter()
            response = client.get(url, secure=True)
            samples[name].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (name, url, response.status_code)
    return samples


def explain(client, url: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Each of the page's queries of the ledger, its plan with EXPLAIN (ANALYZE, BUFFERS)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url, secure=True)
    lines: list[str] = []
    for query in captured.captured_queries:
        sql = query["sql"]
        if sql.lstrip().upper().startswith("SELECT") and "egoejo_backgroundjob" in sql:
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                lines += ["", sql[:400] + (" ..." if len(sql) > 400 else ""), *(line for (line,) in cursor.fetchall())]
    return lines


NEW_INDEXES = {
    "ledger_created_idx": "CREATE INDEX ledger_created_idx ON egoejo_backgroundjob (created_at)",
    "ledger_func_state_idx": "CREATE INDEX ledger_func_state_idx ON egoejo_backgroundjob (func, state, created_at)",
}


def insert_cost(count: int) -> list[list[object]]:
    """What the browser's two indexes cost an enqueue: `BackgroundJob.record` of one row, in its own
    transaction (as a request's), with them, without them (dropped), then with them again (rebuilt:
    the control for drift over the run). µs, p50 / p95."""
    import uuid

    from django.db import connection, transaction

    from app.queueing.models import BackgroundJob

    def run() -> list[float]:
        samples = []
        for i in range(count):
            started = time.perf_counter()
            with transaction.atomic():
                BackgroundJob.record("metrics", FUNCS[0], [(uuid.uuid4().hex, [i], {})], None)
            samples.append((time.perf_counter() - started) * 1e6)
        return samples

    rows = []
    for label in ("with the two indexes", "without them (dropped)", "with them again (rebuilt)"):
        if label.startswith("without"):
            with connection.cursor() as cursor:
                cursor.execute("DROP INDEX " + ", ".join(NEW_INDEXES))
        elif label.startswith("with them again"):
            with connection.cursor() as cursor:
                for sql in NEW_INDEXES.values():
                    cursor.execute(sql)
        samples = run()
        rows.append([label, f"{statistics.median(samples):.0f}", f"{pct(samples, 0.95):.0f}"])
    return rows


def main() -> None:
    args = parse_args(__doc__ or "")
    rows, repeat = run_size(args, (1_000_000, 30), (100_000, 20), (2_000, 3))
    rows = int(os.environ.get("BENCH_LEDGER_ROWS", rows))
    with private_pg_database(BENCH_DB) as database_url, private_redis_db() as db:
        setup_django(DATABASE_URL=database_url, RQ_REDIS_DB=str(db), DJANGO_ALLOWED_HOSTS="testserver")
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.test import Client
        from django.utils import timezone

        call_command("migrate", verbosity=0)
        seconds = fill(rows)
        print(f"\nfilled {rows:,} ledger rows in {seconds:.1f} s (INSERT ... SELECT generate_series, VACUUM ANALYZE)")
        operator = get_user_model().objects.create_superuser("bench-operator", "op@example.org", "bench-password-42")
        client = Client()
        client.force_login(operator)
        now = timezone.now()
        window = f"created_at__gte={(now - timedelta(days=7)):%Y-%m-%dT%H:%M}&created_at__lt={(now - timedelta(days=1)):%Y-%m-%dT%H:%M}"
        ids = [f"{random.Random(i).randint(1, rows)}" for i in range(repeat)]
        from hashlib import md5

        job_ids = [md5(g.encode()).hexdigest() for g in ids]
        base = "/admin/queueing/backgroundjob/"
        pages: dict[str, object] = {
            "search: function + state + time range": f"{base}?func={FUNCS[3]}&state=failed&{window}",
            "job page": lambda i: f"{base}{job_ids[i % len(job_ids)]}/change/",
            "graphs page": f"{base}graphs/",
            "list, no filter (reference)": base,
            "argument text ?q= (reference, a scan)": f"{base}?q=user4242@example.org&{window}",
        }
        timed_pages(client, pages, 2)  # warm: caches, the first connection
        samples = timed_pages(client, pages, repeat)
        print_table(
            f"task browser pages on {rows:,} rows, PostgreSQL, Django test Client, ms ({repeat} requests each; budget: p95 ≤ 200)",
            ["page", "p50", "p95", "max"],
            [[name, f"{statistics.median(v):.1f}", f"{pct(v, 0.95):.1f}", f"{max(v):.1f}"] for name, v in samples.items()],
        )
        for name in ("search: function + state + time range", "job page", "graphs page"):
            path = pages[name]
            url = path(0) if callable(path) else path
            print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the ledger queries of: {name}")
            for line in explain(client, str(url)):
                print("  " + line)
        inserts = run_size(args, 3000, 500, 20)
        print_table(
            f"an enqueue's INSERT (BackgroundJob.record, one row, own transaction) on {rows:,} rows, µs ({inserts:,} each, in turn)",
            ["indexes", "p50", "p95"],
            insert_cost(inserts),
        )


if __name__ == "__main__":
    main()
