"""1,000 mails through the job system to a local SMTP server with STARTTLS, two worker processes.

    scripts/bench mail [--quick]

Measured from the first enqueue to the last mail received, in the same run:
- the seed's pattern: one job and one SMTP connection per mail, forking `rqworker` x2;
- welcome mails one job each, on the light-queue pool (one SMTP session per process);
- the bulk path: `queue_bulk_email` (batches of 100, enqueued in one pipeline) on the pool.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from benchmarks.lib.common import ROOT, parse_args, print_table, private_redis_db, run_size
from benchmarks.lib.workers import bench_env, manage, start, stop

sys.path.insert(0, str(ROOT))

from tests.smtp import SmtpSink  # noqa: E402  (a real aiosmtpd server, as in the tests)

SCENARIOS = {
    "seed: job + connection per mail, forking x2 (baseline)": (
        [["rqworker", "emails"], ["rqworker", "emails"]],
        "[emails.send_email.delay(u.email, 'Bienvenue', '<p>Bonjour</p>') for u in users]",
    ),
    "welcome mails one by one, pool x2": (
        [["rqpool", "emails", "--workers", "2"]],
        "[emails.send_welcome_email.delay(u.pk) for u in users]",
    ),
    "bulk path (batches of 100), pool x2": (
        [["rqpool", "emails", "--workers", "2"]],
        "queue_bulk_email('announcement', [u.pk for u in users])",
    ),
}

ENQUEUE = """
import time
from django.contrib.auth import get_user_model
from django.db import transaction
from app.jobs import emails
from app.services.mail.enqueueing import queue_bulk_email
users = list(get_user_model().objects.filter(username__startswith="bench").order_by("pk"))
started = time.time()
with transaction.atomic():
    {action}
print(started)
"""


def run_scenario(env: dict[str, str], sink: SmtpSink, commands: list[list[str]], action: str, count: int) -> tuple[float, int, int]:
    """(seconds from the first enqueue to the last mail received, SMTP sessions, duplicates)."""
    with sink.lock:
        sink.messages.clear()
        sink.sessions.clear()
    processes = [start(env, *command) for command in commands]
    time.sleep(4)  # boot: not part of the measurement
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", ENQUEUE.format(action=action)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )
    started = float(out.stdout.strip().splitlines()[-1])
    sink.wait_for(count, timeout=600)
    elapsed = time.time() - started
    time.sleep(1)
    stop(processes)
    recipients = sink.recipients()
    return elapsed, len(sink.sessions), len(recipients) - len(set(recipients))


def main() -> None:
    args = parse_args(__doc__ or "")
    count, rounds = run_size(args, (1000, 3), (100, 1), (10, 1))
    rows = []
    with private_redis_db() as db:
        sink = SmtpSink(tls=True)
        sink.start()
        env = bench_env(db, SSL_CERT_FILE=str(sink.cafile), EMAIL_URL=f"smtp+tls://127.0.0.1:{sink.port}", LOG_LEVEL="WARNING")
        manage(env, "migrate", "--noinput")
        manage(env, "shell", "-c", (
            "from django.contrib.auth import get_user_model; U = get_user_model();"
            f"U.objects.bulk_create([U(username=f'bench{{i}}', email=f'bench{{i}}@example.org') for i in range({count})])"
        ))
        # Rounds interleave the scenarios, so that a slow spell of this shared machine hits
        # them all alike; each figure is the median over the rounds.
        results: dict[str, list[tuple[float, int, int]]] = {name: [] for name in SCENARIOS}
        for _ in range(rounds):
            for name, (commands, action) in SCENARIOS.items():
                results[name].append(run_scenario(env, sink, commands, action, count))
        sink.stop()
    medians = {name: statistics.median(run[0] for run in runs) for name, runs in results.items()}
    baseline = next(iter(medians.values()))
    for name, runs in results.items():
        elapsed = medians[name]
        spread = f"{min(r[0] for r in runs):.2f}–{max(r[0] for r in runs):.2f}"
        rows.append([name, f"{elapsed:.2f}", spread, f"{count / elapsed:,.0f}", f"{baseline / elapsed:.1f}x", max(r[1] for r in runs), sum(r[2] for r in runs)])
    print_table(
        f"{count:,} mails, STARTTLS, first enqueue → last mail received (median of {rounds} interleaved rounds)",
        ["path", "seconds", "range", "mails/s", "vs seed", "SMTP sessions (max)", "duplicates (all rounds)"],
        rows,
    )


if __name__ == "__main__":
    main()
