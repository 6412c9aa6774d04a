"""The reconciler's pass under a backlog: what one pass costs Redis when many jobs wait.

    scripts/bench reconciler [--quick]      (BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres)

A page of 500 pending rows whose jobs wait in a queue among N others (an SMTP outage's
backlog). Each pass must tell a waiting job from one whose queue entry was lost. Baseline: the
check as it was until 3 December 2026, one LPOS scan of the queue (and of the hand-over list)
per row, each scan blocking every other Redis client while it runs. Figures: Redis's own
time for the pass (INFO commandstats, summed), and the pass's wall time in the scheduler.
Creates its own database (egoejo_bench_reconciler) and drops it at the end.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta
from typing import Any

from benchmarks.lib.common import median, parse_args, print_table, private_pg_database, private_redis_db, ratio, run_size, setup_django

BENCH_DB = "egoejo_bench_reconciler"
PAGE = 500


def redis_usec(connection: Any) -> int:
    return sum(int(stat["usec"]) for stat in connection.info("commandstats").values())


def per_row_scans(connection: Any, job_ids: list[str]) -> None:
    """The baseline: the check before 3 December 2026, one LPOS per list per row."""
    from app.queueing import rq_compat

    for job_id in job_ids:
        for key in (rq_compat.queue_key("metrics"), rq_compat.intermediate_key("metrics")):
            if connection.lpos(key, job_id) is not None:
                break
        connection.zrange(rq_compat.started_key("metrics"), 0, -1)


def main() -> None:
    args = parse_args(__doc__ or "")
    backlogs, repeat = run_size(args, ([0, 10_000, 100_000], 5), ([0, 10_000], 1), ([0, 1_000], 1))
    with private_pg_database(BENCH_DB) as database_url, private_redis_db() as db:
        setup_django(DATABASE_URL=database_url, RQ_REDIS_DB=str(db))
        from django.core.management import call_command
        from django.db import transaction

        from app.jobs import metrics
        from app.queueing import keys, outbox, rq_compat
        from app.queueing.connections import redis_connection

        call_command("migrate", verbosity=0)
        connection = redis_connection()
        with transaction.atomic():
            page = metrics.update_impact_dashboard_metrics.delay_many([[i] for i in range(PAGE)])
        rows: list[list[object]] = []
        for backlog in backlogs:
            connection.delete(rq_compat.queue_key("metrics"))
            # The page's jobs spread through the backlog, as a page (ordered by id) is.
            waiting = [uuid.uuid4().hex for _ in range(backlog)] + page
            random.Random(backlog).shuffle(waiting)
            for start in range(0, len(waiting), 10_000):
                connection.rpush(rq_compat.queue_key("metrics"), *waiting[start : start + 10_000])
            figures: dict[str, list[float]] = {"baseline": [], "pass": []}
            redis_ms: dict[str, list[float]] = {"baseline": [], "pass": []}
            for _ in range(repeat):
                for name, run in (
                    ("baseline", lambda: per_row_scans(connection, page)),
                    ("pass", lambda: outbox.reconcile(connection, min_age=timedelta(0))),
                ):
                    connection.delete(keys.OUTBOX_CURSOR)
                    before = redis_usec(connection)
                    started = time.perf_counter()
                    run()
                    figures[name].append(time.perf_counter() - started)
                    redis_ms[name].append((redis_usec(connection) - before) / 1000)
            assert connection.llen(rq_compat.queue_key("metrics")) == backlog + PAGE  # nothing pushed twice
            base_redis, pass_redis = median(redis_ms["baseline"]), median(redis_ms["pass"])
            rows.append([
                f"{backlog:,}",
                f"{base_redis:.1f}", f"{pass_redis:.1f}", ratio(base_redis, pass_redis),
                f"{median(figures['baseline']) * 1000:.0f}", f"{median(figures['pass']) * 1000:.0f}",
            ])
        print_table(
            f"one reconciler pass over {PAGE} pending rows whose jobs wait among a backlog (median of {repeat})",
            ["other jobs waiting", "Redis ms: per-row LPOS (baseline)", "Redis ms: the pass", "vs baseline",
             "wall ms: baseline", "wall ms: the pass"],
            rows,
        )
        print("  the pass's figures include all of its work (statuses, claims, sightings); the baseline only the scans")


if __name__ == "__main__":
    main()
