"""Per-job overhead: forking worker (baseline) vs the light-queue pool, and enqueue rates.

    scripts/bench throughput [--quick]

Django is loaded in every worker. The request-path cost is benchmarks/areas/request_path.py. Drain throughput is measured from the first job's start to
the last job's end (worker boot excluded), with two processes per configuration.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from benchmarks.lib.common import median, parse_args, print_table, private_redis_db, rq_time, run_size
from benchmarks.lib.workers import migrated_env, start, stop

CONFIGS = {
    "forking rqworker x2 (baseline)": ([["rqworker", "metrics", "--burst"], ["rqworker", "metrics", "--burst"]], {}),
    "rqpool --workers 2 (light queues)": ([["rqpool", "metrics", "--workers", "2", "--burst"]], {}),
    "rqpool --workers 2, RQ's own paths (RQ_FAST_PATHS=0)": ([["rqpool", "metrics", "--workers", "2", "--burst"]], {"RQ_FAST_PATHS": "0"}),
    # Tracing on (app/tracing.py): spans exported over OTLP/HTTP to a local receiver that discards them.
    "forking rqworker x2, tracing on": ([["rqworker", "metrics", "--burst"], ["rqworker", "metrics", "--burst"]], {"OTEL_EXPORTER_OTLP_ENDPOINT": "{collector}"}),
    "rqpool --workers 2, tracing on": ([["rqpool", "metrics", "--workers", "2", "--burst"]], {"OTEL_EXPORTER_OTLP_ENDPOINT": "{collector}"}),
}


def discarding_collector() -> str:
    """An OTLP/HTTP endpoint on this machine that accepts spans and drops them; returns its URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def enqueue_noops(queue, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    from rq import Queue

    from app.queueing import signing

    queue = Queue(queue.name, connection=queue.connection, serializer=queue.serializer)  # RQ's own class, no outbox
    datas = [Queue.prepare_data("benchmarks.lib.jobs.noop", args=[i], result_ttl=600) for i in range(count)]
    with queue.connection.pipeline() as pipe:
        jobs = queue.enqueue_many(datas, pipeline=pipe)
        for job in jobs:  # signed as the layer signs what it pushes: workers run nothing else
            job.meta[signing.SIGNATURE_META] = signing.sign_job(job)
            pipe.hset(job.key, "meta", queue.serializer.dumps(job.meta))
        pipe.execute()
    return [job.id for job in jobs]


def drain(env: dict[str, str], queue, commands: list[list[str]], count: int) -> float:  # type: ignore[no-untyped-def]
    ids = enqueue_noops(queue, count)
    processes = [start(env, *command) for command in commands]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and any(p.poll() is None for p in processes):
        time.sleep(0.2)
    stop(processes)
    with queue.connection.pipeline() as pipe:
        for job_id in ids:
            pipe.hmget(f"rq:job:{job_id}", "started_at", "ended_at", "status")
        rows = pipe.execute()
    done = [row for row in rows if row[2] == b"finished"]
    assert len(done) == count, f"only {len(done)} of {count} jobs finished"
    return count / (max(rq_time(r[1]) for r in done) - min(rq_time(r[0]) for r in done))


def latency(env: dict[str, str], queue, commands: list[list[str]], count: int) -> float:  # type: ignore[no-untyped-def]
    """Median enqueue → finished, ms, with idle workers waiting (not burst): the project's own
    path, `.delay()` (outbox row, push after commit), as a view would use it."""
    from django.db import transaction

    from benchmarks.lib.jobs import noop

    processes = [start(env, *[part for part in command if part != "--burst"]) for command in commands]
    time.sleep(3)  # let them boot
    ids = []
    for index in range(count):
        with transaction.atomic():
            ids.append(noop.delay(index).id)
        time.sleep(0.02)
    deadline = time.monotonic() + 60  # a loaded machine's forking workers fall behind: wait for the last one
    while True:
        times = [queue.connection.hmget(f"rq:job:{job_id}", "enqueued_at", "ended_at") for job_id in ids]
        if all(enqueued and ended for enqueued, ended in times) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    stop(processes)
    samples = [(rq_time(ended) - rq_time(enqueued)) * 1000 for enqueued, ended in times if enqueued and ended]
    assert len(samples) == count, f"only {len(samples)} of {count} jobs finished"
    return statistics.median(samples)


def enqueue_rates(count: int, rounds: int) -> dict[str, float]:
    """Jobs/s of each enqueue path, median of `rounds` rounds that run the paths in turn."""
    import django_rq
    from django.conf import settings
    from django.db import transaction
    from rq import Queue

    from app.jobs import metrics

    queue = Queue("metrics", connection=django_rq.get_queue("metrics").connection, serializer=django_rq.get_queue("metrics").serializer)

    def rq_one_by_one(offset: int) -> None:
        for index in range(offset, offset + count):
            queue.enqueue("benchmarks.lib.jobs.noop", index)

    def rq_pipeline(offset: int) -> None:
        enqueue_noops(queue, count)

    from django_rq.connection_utils import get_redis_connection
    from django_rq.queues import DjangoRQ

    def stock_django_rq(offset: int) -> None:
        # What django_rq.enqueue does without this project: get_queue builds a new Redis client
        # (and pool, so a new TCP connection) per call, then RQ's enqueue; no outbox, no deferral.
        config = settings.RQ_QUEUES["metrics"]
        for index in range(offset, offset + count):
            with transaction.atomic():
                DjangoRQ("metrics", connection=get_redis_connection(config), serializer=queue.serializer).enqueue("benchmarks.lib.jobs.noop", index)

    def project_one_by_one(offset: int) -> None:
        for index in range(offset, offset + count):
            with transaction.atomic():
                metrics.update_impact_dashboard_metrics.delay(index)

    def django_rq_one_by_one(offset: int) -> None:
        for index in range(offset, offset + count):
            with transaction.atomic():
                django_rq.enqueue(metrics.update_impact_dashboard_metrics, index)

    def project_bulk(offset: int) -> None:
        with transaction.atomic():
            metrics.update_impact_dashboard_metrics.delay_many([[i] for i in range(offset, offset + count)])

    def with_rq_paths(path: Callable[[int], None]) -> Callable[[int], None]:
        def run(offset: int) -> None:
            settings.QUEUEING_FAST_PATHS = False
            try:
                path(offset)
            finally:
                settings.QUEUEING_FAST_PATHS = True

        return run

    paths = {
        "rq enqueue, one by one": rq_one_by_one,
        "rq enqueue_many, one pipeline": rq_pipeline,
        "stock django-rq: django_rq.enqueue without this project, one by one": stock_django_rq,
        "project .delay() (outbox row + push), one by one": project_one_by_one,
        "project .delay(), RQ's own unique enqueue (fast paths off)": with_rq_paths(project_one_by_one),
        "django_rq.enqueue() (same path, via QUEUE_CLASS), one by one": django_rq_one_by_one,
        "project .delay_many() (bulk rows + one conditional push)": project_bulk,
        "project .delay_many(), RQ's own unique enqueue (fast paths off)": with_rq_paths(project_bulk),
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    offset = 0
    for round_ in range(rounds):
        names = list(paths)
        names = names[round_ % len(names):] + names[: round_ % len(names)]  # no path always runs first
        for name in names:
            started = time.perf_counter()
            paths[name](offset)
            samples[name].append(count / (time.perf_counter() - started))
            offset += count
            queue.empty()
    return {name: median(values) for name, values in samples.items()}


def main() -> None:
    args = parse_args(__doc__ or "")
    count, repeat, latency_count = run_size(args, (3000, 3, 300), (300, 1, 50), (20, 1, 5))
    with private_redis_db() as db:
        env = migrated_env(db)
        import django_rq

        queue = django_rq.get_queue("metrics")
        rows = []
        results = {}
        collector = discarding_collector()
        for name, (commands, extra) in CONFIGS.items():
            config_env = {**env, **{key: value.replace("{collector}", collector) for key, value in extra.items()}}
            rates = [drain(config_env, queue, commands, count) for _ in range(repeat)]
            p50 = latency(config_env, queue, commands, latency_count)
            results[name] = (median(rates), p50)
        baseline = results["forking rqworker x2 (baseline)"][0]
        for name, (rate, p50) in results.items():
            rows.append([name, f"{rate:,.0f}", f"{rate / baseline:.1f}x", f"{p50:.1f}"])
        print_table(
            f"drain of {count:,} trivial jobs, Django loaded (median of {repeat})",
            ["worker configuration", "jobs/s", "vs forking", "enqueue→done p50 ms"],
            rows,
        )
        rates = enqueue_rates(count, rounds=1 if args.quick else 5)
        base = rates["rq enqueue, one by one"]
        print_table(
            f"enqueue rate, {count:,} jobs from one client (median of {1 if args.quick else 5} interleaved rounds)",
            ["path", "jobs/s", "vs rq one by one"],
            [[name, f"{rate:,.0f}", f"{rate / base:.1f}x"] for name, rate in rates.items()],
        )


if __name__ == "__main__":
    main()
