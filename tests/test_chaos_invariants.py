"""The chaos campaign's reading of its own fault log (tests/chaos_invariants.py)."""

from __future__ import annotations

import pytest

from tests.chaos_invariants import redis_unavailable

# Seed 23 of the eighth goal run: a welcome mail re-run 30.7 s after its pool was killed at 0.
SEED_23 = [
    (1.0, "redis_client_pause", "4 s"),
    (5.1, "redis_flushdb", ""),
    (5.1, "redis_restart", "killed, back in 3 s with its AOF"),
    (9.4, "kill_web_master", "pid 1"),
    (13.4, "redis_restart", "killed, back in 3 s with its AOF"),
    (13.9, "kill_scheduler", "pid 2"),
    (21.0, "redis_client_pause", "4 s"),
    (25.1, "redis_client_pause", "4 s"),
]


def test_it_sums_the_restarts_and_pauses_within_the_wait():
    assert redis_unavailable(SEED_23, 0.0, 30.7) == pytest.approx(4 + 3 + 3 + 4 + 4)


def test_overlapping_outages_count_once_and_the_window_clips_them():
    events = [(0.0, "redis_client_pause", ""), (2.0, "redis_restart", ""), (3.0, "redis_client_pause", "")]
    assert redis_unavailable(events, 0.0, 100.0) == pytest.approx(7.0)  # 0 → 7, one outage
    assert redis_unavailable(events, 1.0, 4.0) == pytest.approx(3.0)
    assert redis_unavailable(events, 10.0, 20.0) == 0.0
    assert redis_unavailable([(0.0, "redis_flushdb", ""), (1.0, "pg_terminate", "")], 0.0, 10.0) == 0.0
