"""Does a login's time tell whether the name exists or is confirmed?

    scripts/bench login_timing [--quick]

The real login view (Django's test client, in-process, the production password hasher) answers
three kinds of failed login, interleaved: an unknown username, a member's wrong password, and an
unconfirmed account's right password. Each answer is the same 400 (tests/security/test_account_proof.py);
this prints the medians of their times, and of a successful login for scale. Every attempt comes
from its own client address and the per-account budgets are lifted, so that no throttle answers
(a refused attempt checks no password: it is fast for every kind alike).
"""

from __future__ import annotations

import json
import tempfile
import time

from benchmarks.lib.common import median, parse_args, print_table, private_redis_db, run_size, setup_django

KINDS = ("unknown username", "wrong password", "unconfirmed account (right password)", "success (for scale)")


def main() -> None:
    args = parse_args(__doc__ or "")
    rounds = run_size(args, 40, 5, 1)
    with private_redis_db() as db, tempfile.TemporaryDirectory(prefix="egoejo-login-timing-") as var:
        setup_django(
            EGOEJO_VAR_DIR=var, RQ_REDIS_DB=str(db), THROTTLE_REDIS_URL=f"redis://127.0.0.1:6379/{db}",
            THROTTLE_LOGIN_FAILURES_PER_ACCOUNT="100000/15minutes", DJANGO_ALLOWED_HOSTS="testserver", LOG_LEVEL="ERROR",
        )
        from django.contrib.auth import get_user_model
        from django.contrib.auth.hashers import get_hasher
        from django.core.management import call_command
        from django.test import Client
        from django.test.utils import setup_test_environment

        from app.models import PendingAccount

        setup_test_environment()
        call_command("migrate", verbosity=0)
        User = get_user_model()
        User.objects.create_user("member", "member@example.org", "the-members-pass-phrase")
        pending = User.objects.create_user("pending", "pending@example.org", "the-pending-pass-phrase", is_active=False)
        PendingAccount.objects.create(user=pending)
        attempts = {
            KINDS[0]: ("nobody", "the-members-pass-phrase"),
            KINDS[1]: ("member", "not-the-pass-phrase"),
            KINDS[2]: ("pending", "the-pending-pass-phrase"),
            KINDS[3]: ("member", "the-members-pass-phrase"),
        }
        samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
        statuses: dict[str, set[int]] = {kind: set() for kind in KINDS}
        client = Client()
        for n in range(rounds + 2):  # the first two rounds warm up
            for k, kind in enumerate(KINDS):
                username, password = attempts[kind]
                body = json.dumps({"username": username, "password": password})
                started = time.perf_counter()
                response = client.post("/api/auth/login/", body, content_type="application/json", REMOTE_ADDR=f"10.{k}.{n // 250}.{n % 250}")
                elapsed = time.perf_counter() - started
                client.logout()
                statuses[kind].add(response.status_code)
                if n >= 2:
                    samples[kind].append(elapsed * 1000)
        print(f"hasher: {get_hasher().algorithm}, {getattr(get_hasher(), 'iterations', '-')} iterations; {rounds} rounds, interleaved")
        base = median(samples[KINDS[1]])
        print_table(
            "Failed logins: median time by kind (ms)",
            ["attempt", "status", "median ms", "min", "max", "vs wrong password"],
            [
                [kind, "/".join(map(str, sorted(statuses[kind]))), f"{median(s):.1f}", f"{min(s):.1f}", f"{max(s):.1f}", f"{median(s) / base:.2f}x"]
                for kind, s in samples.items()
            ],
        )


if __name__ == "__main__":
    main()
