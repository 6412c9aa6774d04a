"""A short chaos campaign (benchmarks/chaos): real processes, seeded faults of every kind, and the
invariant checker's verdict asserted — not just run. The long campaign is `scripts/bench chaos`."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.chaos import campaign, faults
from benchmarks.chaos.stack import faketime_available, pg_available

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

SEEDS = (11, 12)
JOBS = 24
# Nothing is tolerated: conditional pushes, the worker's status check at dequeue and the lease
# fence closed issue 15 item 1 (a job pushed twice ran twice). Kept as an explicit, empty set.
TOLERATED_UNTIL_CONDITIONAL_PUSHES: set[str] = set()
# Kinds whose target lives only by chance in a 30 s run of 24 jobs: a work-horse exists while an
# image job runs (a few uploads, each processed in well under a second). Their fault is attacked
# on purpose elsewhere: tests/faults/test_process_tree.py (a busy worker's horse killed) and
# tests/faults/test_worker_kills.py. Every other kind must fire in the two seeds.
BY_CHANCE = {"kill_horse"}


def _require(condition: bool, message: str) -> None:
    if not condition:
        pytest.skip(message)


def test_short_campaign_keeps_every_invariant_and_fires_every_fault_kind(tmp_path: Path) -> None:
    """Both seeds, one after the other: each keeps every invariant, and between them every fault
    kind of faults.KINDS but BY_CHANCE was injected at least once (a kind that never found a
    target proves nothing)."""
    _require(shutil.which("redis-server") is not None, "redis-server is not installed")
    _require(pg_available(), "PostgreSQL does not answer on 127.0.0.1:5432 (the campaign creates its own database there)")
    _require(faketime_available(), "libfaketime is missing (scripts/lib/test.d/faketime.sh installs it)")
    fired: Counter[str] = Counter()
    for seed in SEEDS:
        directory = tmp_path / f"seed-{seed}"
        directory.mkdir()
        result = campaign.run_seed(seed, JOBS, directory=directory, duration=30.0, keep=True)
        campaign.print_seed(result)
        _assert_invariants(seed, result, directory)
        fired.update(result.fault_log.injected)
    listed = set(faults.KINDS) - BY_CHANCE
    assert listed - set(fired) == set(), f"fault kinds that never fired: {sorted(listed - set(fired))}; fired: {dict(fired)}"


def _assert_invariants(seed: int, result: campaign.SeedResult, directory: Path) -> None:
    report = result.report
    log = directory / f"seed-{seed}-logs.txt"
    context = f"\nreplay: {result.replay()}\n{log.read_text()[-6000:] if log.exists() else ''}"

    # Every fault kind was scheduled; the ones with a target at that moment were injected.
    assert set(result.fault_log.injected) | set(result.fault_log.skipped) == set(faults.KINDS)
    # The load went through: members registered, mails expected and checked.
    assert report.figures["mails expected"] > 0
    requests = result.load_log.requests
    # Members come in by their confirmation link (it logs them in), or log in after a cut-off one.
    assert requests["confirm 200"] + requests["login 200"] > 0 and requests["contribute 201"] + requests["upload 202"] > 0, dict(requests)
    assert result.load_log.rolled_back, "no job was enqueued in a rolled-back transaction"
    # The invariants: nothing lost, nothing twice (outside the documented uncertain window),
    # dashboards right, quiescence reached with no pending row and no queued/started job.
    assert result.quiescent_after is not None, report.figures.get("at quiescence")
    violations = [(k, d) for k, d in report.violations if k not in TOLERATED_UNTIL_CONDITIONAL_PUSHES]
    assert violations == [], "\n".join(f"{k}: {d}" for k, d in violations) + context
