"""One seed: start the stack, run the load under the seed's fault schedule, wait for quiescence,
check the invariants. Many seeds: the same, one after the other, and a summary."""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import chaos_invariants as invariants

from . import faults, job_state, load
from .stack import ChaosStack, faketime_available, pg_available

QUIESCENCE_TIMEOUT = 180.0
RERUN_GOAL = 30.0  # s from a worker's death to its job's next start (issue 15); a seed past it keeps its logs


@dataclass
class SeedResult:
    seed: int
    jobs: int
    report: invariants.Report
    fault_log: faults.FaultLog
    load_log: load.LoadLog
    quiescent_after: float | None
    seconds: float
    restarts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.report.violations

    def replay(self) -> str:
        return f"scripts/bench chaos --seed {self.seed} --jobs {self.jobs}"


def _wait_up(stack: ChaosStack, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{stack.web_port}/api/projects/"
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            time.sleep(0.3)
    else:
        raise RuntimeError(f"the web did not come up\n{stack.log_tail()}")
    client = stack.redis_client()
    while time.monotonic() < deadline:
        if len(list(client.scan_iter("rq:worker:*"))) >= 6:  # two pools' two members each and the two images workers
            return
        time.sleep(0.3)
    raise RuntimeError(f"the workers did not register\n{stack.log_tail()}")


def wait_quiescent(stack: ChaosStack, timeout: float) -> float | None:
    started = time.monotonic()
    calm = 0
    while time.monotonic() - started < timeout:
        try:
            state = invariants.quiescence(stack)
        except Exception:  # noqa: BLE001 - the database may still be restarting its connections
            state = {"pending_rows": 1}
        calm = calm + 1 if not any(state.values()) else 0
        if calm >= 3:
            return time.monotonic() - started
        time.sleep(1)
    return None


def run_seed(seed: int, jobs: int, directory: Path | None = None, kinds: tuple[str, ...] | None = None,
             duration: float | None = None, keep: bool = False, verbose: bool = True) -> SeedResult:
    began = time.monotonic()
    base = directory or Path(tempfile.mkdtemp(prefix=f"chaos-{seed}-"))
    stack = ChaosStack(base / f"seed-{seed}", seed)
    duration = duration or max(30.0, jobs * 0.4)
    count = max(len(kinds or faults.KINDS), jobs // 5)
    plan = faults.schedule(seed, count, duration, kinds or faults.KINDS)
    try:
        stack.start()
        _wait_up(stack)
        project = load.setup_project(stack)
        injector = faults.Injector(stack, seed)
        load_started = time.monotonic()

        def inject(kind: str) -> None:
            try:
                injector.inject(kind)
            except Exception as exc:  # noqa: BLE001 - a fault that could not be injected is reported
                injector.log.skipped[kind] += 1
                logging.getLogger(__name__).warning("chaos: %s not injected: %s", kind, exc)

        def inject_all() -> None:
            for fault in plan:
                delay = load_started + fault.at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                inject(fault.kind)
            # A kind that found no target (no horse alive, schedulers restarting) gets one more try.
            for kind in sorted(set(injector.log.skipped) - set(injector.log.injected)):
                inject(kind)

        fault_thread = threading.Thread(target=inject_all, daemon=True, name="faults")
        fault_thread.start()
        load_log = load.run_load(stack, seed, jobs, project, duration)
        fault_thread.join()
        injector.wait_undone()
        with stack.sink.lock:
            stack.sink.script.clear()
        quiet = wait_quiescent(stack, QUIESCENCE_TIMEOUT)
        stuck = f"{stack.process_states()}\n--- unfinished jobs in Redis\n{job_state.unfinished_jobs(stack)}" if quiet is None else ""
        injector.stop_watching()
        report = invariants.check(stack, injector.log)
        invariants.rolled_back_left_nothing(report, stack, load_log.rolled_back)
        restarts = {name: len(proc.deaths) for name, proc in stack.processes.items()}
        for name, proc in stack.processes.items():
            if proc.orphans and name != "web":  # gunicorn's workers notice a dead master themselves, later
                report.violation("children outlived their killed parent", f"{name}: {len(proc.orphans)} process(es)")
        report.figures["orphans reaped at restart"] = {n: len(p.orphans) for n, p in stack.processes.items() if p.orphans}
        worst = report.figures.get("worst re-run after the fault, s")
        if verbose and (report.violations or (worst is not None and worst > RERUN_GOAL)):
            saved = base / f"seed-{seed}-logs.txt"
            saved.write_text(stack.log_tail(400_000) + (f"\n--- processes when the wait for quiescence ended\n{stuck}" if stuck else ""))
            report.figures["logs kept in"] = str(saved)
        stack.stop()
        return SeedResult(seed, jobs, report, injector.log, load_log, quiet, time.monotonic() - began, restarts)
    finally:
        stack.stop()
        stack.teardown(keep=keep)


def print_seed(result: SeedResult) -> None:
    r = result.report
    print(f"\n=== seed {result.seed}: {result.jobs} jobs, {result.seconds:.0f} s, "
          f"{'OK' if result.ok else f'{len(r.violations)} VIOLATION(S)'}")
    print(f"  load: {dict(sorted(result.load_log.requests.items()))}; bulk jobs {len(result.load_log.bulk_jobs)}; "
          f"jobs enqueued in rolled-back transactions {len(result.load_log.rolled_back)}")
    print(f"  faults injected: {dict(sorted(result.fault_log.injected.items()))}")
    if result.fault_log.skipped:
        print(f"  faults without a target then: {dict(sorted(result.fault_log.skipped.items()))}")
    print(f"  process deaths (restarted): {result.restarts}")
    print(f"  quiescent {result.quiescent_after:.0f} s after the load" if result.quiescent_after is not None
          else f"  NOT quiescent after {QUIESCENCE_TIMEOUT:.0f} s")
    for key, value in r.figures.items():
        print(f"  {key}: {value}")
    if r.apart:
        print(f"  uncertain window, per policy (counted apart): {dict(r.apart)}")
    if r.expected_failures:
        print(f"  expected failures: {dict(r.expected_failures)}")
    for kind, count in sorted(r.counts.items()):
        details = [d for k, d in r.violations if k == kind]
        print(f"  VIOLATION {kind}: {count}")
        for detail in details[:5]:
            print(f"      {detail}")
    if not result.ok:
        print(f"  replay: {result.replay()}")


def summary(results: list[SeedResult]) -> dict[str, Any]:
    injected: Counter[str] = Counter()
    violations: Counter[str] = Counter()
    apart: Counter[str] = Counter()
    worst = [r.report.figures.get("worst re-run after the fault, s") for r in results]
    worst_by_fault: dict[str, float] = {}
    reruns = 0
    for r in results:
        injected.update(r.fault_log.injected)
        violations.update(r.report.counts)
        apart.update(r.report.apart)
        reruns += sum(1 for a in r.fault_log.abandoned if a.rerun_after is not None)
        for kind, seconds in (r.report.figures.get("worst re-run by fault, s") or {}).items():
            worst_by_fault[kind] = max(seconds, worst_by_fault.get(kind, 0.0))
    return {
        "seeds": len(results),
        "failing seeds": [r.seed for r in results if not r.ok],
        "faults injected": dict(sorted(injected.items())),
        "kinds never injected": sorted(set(faults.KINDS) - set(injected)),
        "violations": dict(sorted(violations.items())),
        "uncertain window (apart)": dict(apart),
        "jobs re-run after their worker died": reruns,
        "worst re-run, s": max((w for w in worst if w is not None), default=None),
        "worst re-run by fault, s": dict(sorted(worst_by_fault.items())),
        "worst re-run while Redis served, s": max(
            (w for r in results if (w := r.report.figures.get("worst re-run while Redis served, s")) is not None), default=None
        ),
        "seconds": round(sum(r.seconds for r in results)),
        "replay": [r.replay() for r in results if not r.ok],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench chaos", description=__doc__)
    parser.add_argument("--seeds", type=int, default=None, help="how many seeds, from --seed (default 1) on; 5 without --seed")
    parser.add_argument("--seed", type=int, default=None, help="run this seed only (or the first of --seeds)")
    parser.add_argument("--jobs", type=int, default=100, help="outbox rows of load per seed (about)")
    parser.add_argument("--keep", action="store_true", help="keep each seed's directory (logs, media, AOF)")
    parser.add_argument("--quick", action="store_true", help="one seed, 30 jobs")
    parser.add_argument("--parallel", type=int, default=1, help="seeds run at once, each on its own stack (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not pg_available():
        print("chaos: PostgreSQL does not answer on 127.0.0.1:5432 (user postgres): the campaign needs it")
        return 2
    if not faketime_available():
        print("chaos: libfaketime is missing (apt-get install faketime): the web clock fault is skipped")
    first = args.seed if args.seed is not None else 1
    how_many = 1 if args.quick else args.seeds if args.seeds is not None else 1 if args.seed is not None else 5
    seeds = list(range(first, first + how_many))
    jobs = 30 if args.quick else args.jobs
    results = []
    if args.parallel > 1:
        # Each seed has its own Redis, database, sink and ports: seeds do not share anything but
        # the machine's cores (which slows recovery a little: the figures are worst cases).
        with ProcessPoolExecutor(max_workers=args.parallel, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(run_seed, seed, jobs, None, None, None, args.keep) for seed in seeds]
            for future in as_completed(futures):
                result = future.result()
                print_seed(result)
                sys.stdout.flush()
                results.append(result)
        results.sort(key=lambda r: r.seed)
    else:
        for seed in seeds:
            result = run_seed(seed, jobs, keep=args.keep)
            print_seed(result)
            sys.stdout.flush()
            results.append(result)
    print("\n=== campaign summary")
    print(json.dumps(summary(results), indent=2))
    return 0 if all(r.ok for r in results) else 1
