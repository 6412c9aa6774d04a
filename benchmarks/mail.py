"""1,000 mails through the job system to a local SMTP server with STARTTLS, two worker processes.

    scripts/bench mail [--quick]

Measured from the first enqueue to the last mail received, in the same run:
- the seed's pattern: one job and one SMTP connection per mail, forking `rqworker` x2;
- welcome mails one job each, on the light-queue pool (one SMTP session per process);
- the bulk path: `queue_bulk_email` (batches of 100, enqueued in one pipeline) on the pool.
"""

from __future__ import annotations

import sys
import time

from benchmarks.common import ROOT, parse_args, print_table, private_redis_db
from benchmarks.workers import bench_env, manage, start, stop

sys.path.insert(0, str(ROOT))

from tests.smtp import SmtpSink  # noqa: E402  (a real aiosmtpd server, as in the tests)

SCENARIOS = {
    "seed: job + connection per mail, forking x2 (baseline)": (
        [["rqworker", "emails"], ["rqworker", "emails"]],
        "[enqueue(emails.send_email, u.email, 'Bienvenue', '<p>Bonjour</p>') for u in users]",
    ),
    "welcome mails one by one, pool x2": (
        [["rqpool", "emails", "--workers", "2"]],
        "[enqueue(emails.send_welcome_email, u.pk) for u in users]",
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
from app.jobs.queues import enqueue
from app.services.mail_fanout import queue_bulk_email
users = list(get_user_model().objects.filter(username__startswith="bench").order_by("pk"))
started = time.time()
with transaction.atomic():
    {action}
print(started)
"""


def main() -> None:
    args = parse_args(__doc__ or "")
    count = 100 if args.quick else 1000
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
        results = {}
        for name, (commands, action) in SCENARIOS.items():
            with sink.lock:
                sink.messages.clear()
                sink.sessions.clear()
            processes = [start(env, *command) for command in commands]
            time.sleep(4)  # boot: not part of the measurement
            import subprocess

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
            duplicates = len(recipients) - len(set(recipients))
            results[name] = (elapsed, len(sink.sessions), duplicates)
        sink.stop()
    baseline = next(iter(results.values()))[0]
    for name, (elapsed, sessions, duplicates) in results.items():
        rows.append([name, f"{elapsed:.2f}", f"{count / elapsed:,.0f}", f"{baseline / elapsed:.1f}x", sessions, duplicates])
    print_table(
        f"{count:,} mails, STARTTLS, first enqueue → last mail received",
        ["path", "seconds", "mails/s", "vs seed", "SMTP sessions", "duplicates"],
        rows,
    )


if __name__ == "__main__":
    main()
