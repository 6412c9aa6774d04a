"""The fault campaign: the real processes under seeded random faults, and an invariant checker.

    scripts/bench chaos [--seeds N] [--jobs M] [--seed S] [--keep] [--quick]

Each seed gets its own redis-server (AOF), PostgreSQL database, SMTP sink and the project's four
processes (gunicorn, the light-queue pool, two forking images workers, the scheduler), restarted
1 s after they die. Load goes through the public HTTP API; faults are signals, Redis and
PostgreSQL commands, SMTP answers, a database lock and the web's clock (faults.KINDS). Afterwards
the invariants (tests/chaos_invariants.py, one function each) read SQL, the sink, the files and
Redis. A failing seed prints how to replay it. tests/faults/test_chaos.py runs a short campaign in the suite.
"""
