"""README.md's troubleshooting table, run as written against a running stack.

The table is parsed from README.md, so the test follows the document: each command of the
"command" column runs in a shell as after `. .venv/bin/activate`, in a checkout where
`scripts/run` ran once (var/dev.env, and nothing of the project in the environment but where
the test's Redis and database are). Only the queue DB is changed, from the README's DB 2 to
the test's own. Every row must be covered by an expectation below, and every command succeed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests import redis_db
from tests.e2e.processes import ROOT, logs, manage, running, stack_env

pytestmark = pytest.mark.e2e

README = ROOT / "README.md"
BAD_ADDRESS = "broken@"

# What each command must show (a substring of its output) or do, keyed by the command as written.
EXPECTED_OUTPUT = {
    "redis-cli -n 2 ping": "PONG",
    "rq info --url redis://127.0.0.1:6379/2 -S rq.serializers.JSONSerializer": "emails",
    "python manage.py rqstats": "emails",
    "rq info --url redis://127.0.0.1:6379/2 -S rq.serializers.JSONSerializer -W": "emails",
    "python manage.py failedjobs --queue emails": f"invalid e-mail address '{BAD_ADDRESS}'",
    "rq requeue --url redis://127.0.0.1:6379/2 -S rq.serializers.JSONSerializer --queue emails --all": "Requeueing 1 jobs",
    "rq empty --url redis://127.0.0.1:6379/2 emails": "emails",
    "python manage.py rqsuspend": "suspended",
    "python manage.py rqresume": "resumed",
}


def troubleshooting_commands() -> list[str]:
    """Every `backticked` command in the "command" column of README.md's troubleshooting table."""
    section = README.read_text().split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    commands: list[str] = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[1] in ("command", "---") or set(cells[1]) <= {"-"}:
            continue
        for command in re.findall(r"`([^`]+)`", cells[1]):
            if command.split()[0] in {"python", "rq", "redis-cli"}:  # not URLs such as `/admin/django-rq/`
                commands.append(command)
    return commands


def on_test_db(command: str, db: int) -> str:
    return command.replace("redis://127.0.0.1:6379/2", f"{redis_db.redis_url()}/{db}").replace("-n 2 ", f"-n {db} ")


def test_the_table_is_what_this_test_runs():
    assert troubleshooting_commands() == list(EXPECTED_OUTPUT)


def test_readme_troubleshooting_commands_work_as_written(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis):
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index)
    var = Path(env["EGOEJO_VAR_DIR"])
    var.mkdir(parents=True)
    # What scripts/run leaves behind: var/dev.env with the generated secret and logins.
    (var / "dev.env").write_text(
        "DJANGO_SECRET_KEY=readme-test-dev-secret-0123456789\nDEV_ADMIN_USERNAME=admin\nDEV_ADMIN_PASSWORD=x\n"
    )
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "-c", f"from app.jobs.emails import send_email; send_email.delay({BAD_ADDRESS!r}, 'Hi', '<p>x</p>')")
    log_dir = tmp_path / "logs"
    # The operator's shell: the venv first on PATH, none of the project's variables except where
    # this test's Redis DB and database are (an operator's .env would say so).
    shell = {k: v for k, v in env.items() if not k.startswith(("DJANGO_", "EMAIL_", "RQ_DASHBOARD_"))}
    shell["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    with running(env, ["manage.py", "rqworker", "emails", "images", "metrics"], ["manage.py", "rqscheduler", "--interval", "1"], log_dir=log_dir):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and redis_conn.zcard("rq:failed:emails") < 1:
            time.sleep(0.2)
        assert redis_conn.zcard("rq:failed:emails") == 1, logs(log_dir)
        for command in troubleshooting_commands():
            if command == "rq empty --url redis://127.0.0.1:6379/2 emails":
                # Something to purge: jobs waiting while the workers are paused.
                redis_conn.set("rq:suspended", 1)
                for n in range(3):
                    manage(env, "shell", "-c", f"import django_rq; django_rq.get_queue('emails').enqueue_call('app.jobs.emails.send_email', args=['a{n}@example.org', 's', 'x'])")
                # (a worker already blocked on the queue may take the first one before it sees the pause)
                assert redis_conn.llen("rq:queue:emails") >= 1
            result = subprocess.run(
                ["bash", "-c", on_test_db(command, redis_db_index)], cwd=ROOT, env=shell, capture_output=True, text=True, timeout=60
            )
            output = result.stdout + result.stderr
            assert result.returncode == 0, f"{command}\n{output}"
            assert "Traceback" not in output, f"{command}\n{output}"
            assert EXPECTED_OUTPUT[command] in output, f"{command}\n{output}"
            if command.startswith("rq empty"):
                assert redis_conn.llen("rq:queue:emails") == 0
                redis_conn.delete("rq:suspended")
            if command == "python manage.py rqsuspend":
                assert redis_conn.exists("rq:suspended")
            if command == "python manage.py rqresume":
                assert not redis_conn.exists("rq:suspended")
