"""Django's standard task API against `.delay()`, in the same run: what `.enqueue()` adds.

    scripts/bench tasks_api [--quick]

The same declared job (benchmarks.lib.jobs.noop) through both APIs: `noop.delay(i)` and its standard
Task, `noop.task.enqueue(i)` (app/queueing/tasks_backend.py).

- Request path: one process plays a request (dispatch's request_started / request_finished
  around it); timed is the view's part, `transaction.atomic()` around the enqueue up to its
  commit (the outbox row; the push waits for the response and is not timed). The two APIs and a
  control without an enqueue alternate, call by call, in a rotating order.
- Enqueue → done: one idle rqpool member on `metrics`; the APIs alternate, one job every 20 ms,
  and each job's enqueued_at → ended_at is read from its hash (as benchmarks/areas/throughput.py).
Short runs on a shared machine: 3,000 request-path calls and 300 jobs per API (--quick: 300, 50).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from benchmarks.lib.common import parse_args, pct, print_table, private_redis_db, rq_time, run_size
from benchmarks.lib.workers import migrated_env, start, stop


def request_path(count: int) -> dict[str, list[float]]:
    from django.db import transaction

    from app.queueing import dispatch
    from benchmarks.lib.jobs import noop

    standard = noop.task
    paths: dict[str, Callable[[int], object]] = {
        "no enqueue (control)": lambda i: None,
        ".delay()": noop.delay,
        ".task.enqueue() (standard API)": standard.enqueue,
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for index in range(count):
        for name in names[index % 3 :] + names[: index % 3]:  # no path always follows the same one
            call = paths[name]
            dispatch.on_request_started()
            started = time.perf_counter()
            with transaction.atomic():
                call(index)
            samples[name].append((time.perf_counter() - started) * 1e6)
            dispatch.on_request_finished()  # the push, once the response would have gone
    return samples


def enqueue_to_done(env: dict[str, str], queue, count: int) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    from django.db import transaction

    from benchmarks.lib.jobs import noop

    paths: dict[str, Callable[[int], str]] = {".delay()": lambda i: noop.delay(i).id, ".task.enqueue() (standard API)": lambda i: noop.task.enqueue(i).id}
    worker = start(env, "rqpool", "metrics", "--workers", "1")
    time.sleep(4)  # let it boot
    ids: dict[str, list[str]] = {name: [] for name in paths}
    try:
        for index in range(count):
            for name, call in (list(paths.items()) if index % 2 else list(paths.items())[::-1]):
                with transaction.atomic():
                    ids[name].append(call(index))
                time.sleep(0.02)
        time.sleep(1)
    finally:
        stop([worker])
    samples: dict[str, list[float]] = {}
    for name, job_ids in ids.items():
        samples[name] = []
        for job_id in job_ids:
            enqueued, ended = queue.connection.hmget(f"rq:job:{job_id}", "enqueued_at", "ended_at")
            assert enqueued and ended, f"{job_id} ({name}) did not finish"
            samples[name].append((rq_time(ended) - rq_time(enqueued)) * 1000)
    return samples


def main() -> None:
    args = parse_args(__doc__ or "")
    calls, jobs = run_size(args, (3000, 300), (300, 50), (20, 5))
    with private_redis_db() as db:
        env = migrated_env(db)
        import django_rq

        queue = django_rq.get_queue("metrics")
        request = request_path(calls)
        queue.empty()
        base = statistics.median(request[".delay()"])
        print_table(
            f"request path: atomic() + enqueue + commit, µs ({calls:,} calls each, interleaved; push after the response, untimed)",
            ["path", "p50", "p90", "mean", "p50 vs .delay()"],
            [[name, f"{statistics.median(v):.0f}", f"{pct(v, 0.9):.0f}", f"{statistics.mean(v):.0f}", f"{statistics.median(v) - base:+.0f}"]
             for name, v in request.items()],
        )
        done = enqueue_to_done(env, queue, jobs)
        base = statistics.median(done[".delay()"])
        print_table(
            f"enqueue → done, ms (one idle rqpool member, {jobs} jobs each, interleaved)",
            ["path", "p50", "p90", "p50 vs .delay()"],
            [[name, f"{statistics.median(v):.2f}", f"{pct(v, 0.9):.2f}", f"{statistics.median(v) - base:+.2f}"] for name, v in done.items()],
        )


if __name__ == "__main__":
    main()
