"""Every command README.md and the reference pages of docs/ name, each run or accounted for.

`documented_commands()` collects every backticked span of README.md and docs/*.md (history.md
excepted: it tells what was run, not what to run) that starts like a command (`python`,
`manage.py`, `rq`, `redis-cli`, `curl`, `scripts/…`, `docker`, `railway`, `promtool`, `celery`).
Each must have an entry in HOW, and HOW no entry the docs lost, so a new or changed command in a
page fails here until it is classified:

- RUNS: run in a shell as an operator would, against a live stack (web, workers, scheduler) on the
  test's own Redis DB and database, and its output must show the expected text, without a traceback;
- SERVES: a long-running process: it starts, shows it is up (a worker's registration, the scheduler's
  heartbeat, an HTTP answer), and stops within STOP_WITHIN seconds of one SIGTERM;
- PROVEN_BY: run by another test or by `.ci/run` (named, and the name must exist);
- SYNTAX: a usage line with placeholders (`<queue>`, `[--limit 50]`, `...`) or a bare command
  name in prose; its concrete forms are in RUNS or SERVES;
- NOT_HERE: needs what no test machine has (a Docker engine, a Railway account) or belongs to the
  Celery stack this project replaced (named in the docs' Celery tables only).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from tests import redis_db
from tests.e2e.processes import PYTHON, ROOT, as_role, logs, manage, stack_env, stop_all
from tests.e2e.test_readme_commands import troubleshooting_commands
from tests.smtp import free_port

pytestmark = pytest.mark.e2e

PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "history.md")]
COMMAND_HEADS = ("python", "manage.py", "rq", "redis-cli", "curl", "docker", "docker-compose", "railway", "promtool", "celery")
STOP_WITHIN = 10.0  # seconds from one SIGTERM to exit, for an idle process (docs/reliability.md)
METRICS_TOKEN = "doc-commands-metrics-token-0123456789abcdef"
README_TABLE = "tests/e2e/test_readme_commands.py::test_readme_troubleshooting_commands_work_as_written"
BENCH = "tests/test_bench.py::test_every_area_runs_at_its_smallest"
CI = ".ci/run"

# command as written → expected output (a substring), in the order they run.
RUNS: dict[str, str] = {
    "manage.py migrate": "",
    "manage.py demo_data": "project",
    "python -c 'import secrets; print(secrets.token_urlsafe(48))'": "",
    "python -c 'import secrets; print(secrets.token_urlsafe(50))'": "",
    "redis-cli ping": "PONG",
    "redis-cli info memory \\| grep -E \"used_memory_human\\|maxmemory_human\"": "used_memory_human",
    "redis-cli --bigkeys -n 2": "summary",
    "redis-cli -n 2 get egoejo:scheduler:alive": "",
    "rq info $RQ": "emails",
    "rq info $RQ -W": "emails",
    "curl -H \"Authorization: Bearer $METRICS_TOKEN\" $METRICS_URL": "egoejo_",
    "curl -sS -H \"Authorization: Bearer $METRICS_TOKEN\" http://WEB:8000/metrics \\| head": "# HELP",
    "python manage.py shell -c \"import django_rq; q=django_rq.get_queue('emails'); print(q.failed_job_registry.get_job_ids()[:5])\"": "[",
    "python manage.py shell -c \"from app.queueing.models import BackgroundJob as B; print(list(B.objects.filter(state='pending').order_by('created_at').values_list('id','queue','func','created_at')[:10]))\"": "[",
    "python manage.py failedjobs": "emails: ",
    "python manage.py failedjobs --queue emails --requeue": "",
    "python manage.py failedjobs --queue emails --delete": "",
}

# command as written → how it shows it is up: "worker" (a worker registers in Redis), "scheduler"
# (its heartbeat key), or an HTTP path answered on $PORT.
SERVES: dict[str, str] = {
    "manage.py rqworker emails images metrics": "worker",
    "manage.py rqworker images --with-scheduler": "worker",
    "manage.py rqpool emails metrics --workers 2": "worker",
    "manage.py rqscheduler": "scheduler",
    "manage.py rqdashboard": "http:/",
    "manage.py rqdashboard --bind [::] --port $PORT": "http:/",
    "manage.py runserver": "http:/livez",
}

PROVEN_BY: dict[str, str] = {
    "scripts/run": "tests/test_dev_stack.py::test_a_killed_pool_restarts_and_sigint_stops_all",
    "scripts/test": CI,
    "scripts/test tests/test_rq_compat.py": CI,
    "scripts/test tests/test_views.py -x": CI,
    "scripts/lint": CI,
    "scripts/bench [AREA ...] [--quick|--smoke]": BENCH,
    "scripts/bench chaos": BENCH,
    "scripts/bench images": BENCH,
    "scripts/bench ledger": BENCH,
    "scripts/bench login_timing": BENCH,
    "scripts/bench mail": BENCH,
    "scripts/bench metrics": BENCH,
    "scripts/bench reconciler": BENCH,
    "scripts/bench request_path": BENCH,
    "scripts/bench tasks_api": BENCH,
    "scripts/bench throughput": BENCH,
    "scripts/bench upload_memory": BENCH,
    "docker compose config": "tests/test_compose.py::test_the_stack_has_every_service",
    "docker-compose config": "tests/test_compose.py::test_the_stack_has_every_service",
    "promtool test rules": "tests/test_alert_rules.py::test_each_alert_fires_when_it_should_and_not_before",
    "manage.py check --deploy": "tests/security/test_deploy.py::test_check_deploy_is_clean_in_production",
    **{command: README_TABLE for command in troubleshooting_commands()},
}

SYNTAX = {
    "manage.py rqworker", "manage.py rqpool", "manage.py shell", "manage.py rqsuspend", "rq", "python manage.py ...",
    "manage.py rqworker <queue> --with-scheduler", "manage.py rqpool <queue>",
    "python manage.py failedjobs --queue <queue>", "python manage.py failedjobs [--queue emails] [--limit 50]",
    "scripts/bench chaos [--seeds N] [--jobs M] [--seed S] [--keep]", "scripts/lock --upgrade-package NAME",
    "python manage.py failedjobs [--queue Q]", "python manage.py rqstats [--json]", "rq info -W",
}

NOT_HERE = {
    # No Docker engine on a test machine; the compose file itself is checked by tests/test_compose.py.
    "docker compose up -d", "docker compose up -d redis", "docker compose up -d --scale worker-light=4",
    "docker compose --profile monitoring up -d", "docker compose ps scheduler",
    "docker compose logs --tail 100 worker-images",
    "docker compose logs --tail 200 worker-images \\| grep -i \"killed\\|abandoned\"",
    "docker compose exec web python manage.py ...",
    "docker compose exec postgres pg_dumpall -U egoejo > dump.sql",
    "docker compose exec -T postgres psql -U egoejo < dump.sql",
    # A Railway account and project.
    "railway link", "railway ssh --service web -- python manage.py createsuperuser",
    # The Celery stack this project replaced, in the docs' mapping tables.
    "celery -A app worker", "celery inspect active", "celery inspect stats", "celery purge",
    # Rewrites the committed locks from the package index; scripts/test's `pip check` holds what it wrote.
    "scripts/lock",
}


def documented_commands() -> set[str]:
    commands: set[str] = set()
    for page in PAGES:
        for span in re.findall(r"`([^`\n]+)`", page.read_text()):
            head = span.split()[0]
            if head in COMMAND_HEADS or (head.startswith("scripts/") and not head.startswith("scripts/lib/")):
                commands.add(span)
    commands.discard("manage.py")  # the file, named as such
    return commands


def test_every_documented_command_is_classified_once():
    classes = [set(RUNS), set(SERVES), set(PROVEN_BY), SYNTAX, NOT_HERE]
    classified = set().union(*classes)
    assert sum(len(c) for c in classes) == len(classified), "a command is in two classes"
    documented = documented_commands()
    assert documented - classified == set(), "documented but not classified (add it to this file)"
    assert classified - documented == set(), "classified but no longer in the docs"


def test_every_command_proven_elsewhere_names_a_test_that_exists():
    for command, proof in PROVEN_BY.items():
        path, _, name = proof.partition("::")
        assert (ROOT / path).exists(), f"{command}: {path}"
        if name:
            assert re.search(rf"^def {re.escape(name)}\(", (ROOT / path).read_text(), re.MULTILINE), f"{command}: {proof}"
    assert "scripts/lint" in (ROOT / CI).read_text() and "scripts/test" in (ROOT / CI).read_text()


def _dev_env(tmp_path: Path) -> None:
    """What `scripts/run` leaves behind (scripts/lib/dev_env.py): var/dev.env, read by manage.py."""
    var = tmp_path / "var"
    var.mkdir()
    (var / "dev.env").write_text(
        "DJANGO_SECRET_KEY=doc-commands-dev-secret-0123456789\nDEV_ADMIN_USERNAME=admin\nDEV_ADMIN_PASSWORD=x\n"
        "RQ_DASHBOARD_USERNAME=admin\nRQ_DASHBOARD_PASSWORD=doc-commands-dashboard\n"
    )


def _shell_env(env: dict[str, str], db: int, web_port: int) -> dict[str, str]:
    """An operator's shell: the venv on PATH, the variables the docs tell them to set."""
    shell = {k: v for k, v in env.items() if not k.startswith(("DJANGO_", "EMAIL_", "RQ_DASHBOARD_"))}
    shell["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    shell["RQ"] = f"--url {redis_db.redis_url()}/{db} -S rq.serializers.JSONSerializer"
    shell["METRICS_TOKEN"] = METRICS_TOKEN
    shell["METRICS_URL"] = f"http://127.0.0.1:{web_port}/metrics"
    return shell


def _as_typed(command: str, db: int, web_port: int) -> str:
    """The command on the test's Redis DB and web port; `\\|` in a table cell is a pipe."""
    command = command.replace("\\|", "|").replace("-n 2 ", f"-n {db} ").replace("http://WEB:8000", f"http://127.0.0.1:{web_port}")
    host = redis_db.redis_url().split("://", 1)[1]
    hostname, _, port = host.rpartition(":")
    if command.startswith("redis-cli"):  # options before the command
        database = "" if " -n " in command else f" -n {db}"
        command = f"redis-cli -h {hostname} -p {port}{database}" + command[len("redis-cli"):]
    if command.startswith("manage.py"):
        command = "python " + command
    return command


def test_each_documented_command_runs_against_a_live_stack(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis):
    web_port = free_port()
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index, METRICS_TOKEN=METRICS_TOKEN, DJANGO_SSL_REDIRECT="0")
    _dev_env(tmp_path)
    manage(env, "migrate", "--noinput")
    # A failed job, for the failed-registry commands to show, requeue and delete.
    manage(env, "shell", "-c", "from app.jobs.emails import send_email; send_email.delay('broken@', 'Hi', '<p>x</p>')")
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    stack = [
        ["manage.py", "runserver", f"127.0.0.1:{web_port}", "--noreload"],
        ["manage.py", "rqworker", "emails", "images", "metrics"],
        ["manage.py", "rqscheduler", "--interval", "1"],
    ]
    processes = [_start(env, argv, log_dir / f"stack-{n}.log") for n, argv in enumerate(stack)]
    try:
        _wait_for(lambda: redis_conn.zcard("rq:failed:emails") >= 1, 60, "the failed job", log_dir)
        _wait_for(lambda: _answers(f"http://127.0.0.1:{web_port}/livez"), 60, "the web server", log_dir)
        _wait_for(lambda: redis_conn.exists("egoejo:scheduler:alive"), 60, "the scheduler's heartbeat", log_dir)
        shell = _shell_env(env, redis_db_index, web_port)
        for command, expected in RUNS.items():
            typed = _as_typed(command, redis_db_index, web_port)
            result = subprocess.run(["bash", "-o", "pipefail", "-c", typed], cwd=ROOT, env=shell, capture_output=True, text=True, timeout=120)
            output = result.stdout + result.stderr
            if command.endswith("| head"):  # head closes the pipe early: curl may see SIGPIPE
                assert result.stdout.strip(), f"{typed}\n{output}"
            else:
                assert result.returncode == 0, f"{typed}\n{output}"
            assert "Traceback" not in output, f"{typed}\n{output}"
            assert expected in output, f"{typed}: expected {expected!r}\n{output}"
            if "token_urlsafe" in command:
                assert len(result.stdout.strip()) >= 64, output
    finally:
        stop_all(processes)


@pytest.mark.parametrize("command", list(SERVES))
def test_each_documented_server_starts_and_stops_on_one_sigterm(command: str, tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis):
    port = free_port()
    env = stack_env(
        tmp_path, redis_db.redis_url(), redis_db_index, PORT=str(port), DJANGO_SSL_REDIRECT="0",
        RQ_DASHBOARD_USERNAME="admin", RQ_DASHBOARD_PASSWORD="doc-commands-dashboard",
    )
    _dev_env(tmp_path)
    manage(env, "migrate", "--noinput")
    argv = _as_typed(command, redis_db_index, port).replace("$PORT", str(port)).split()[1:]
    if argv[:2] == ["manage.py", "runserver"]:
        argv += [f"127.0.0.1:{port}", "--noreload"]  # the docs' bare form binds 8000 and reloads
    if argv == ["manage.py", "rqdashboard"]:
        argv += ["--port", str(port)]  # its documented default port may be taken on a test machine
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    process = _start(env, argv, log_dir / "server.log")
    try:
        check = SERVES[command]
        if check == "worker":
            _wait_for(lambda: redis_conn.scard("rq:workers") >= 1, 60, command, log_dir)
        elif check == "scheduler":
            _wait_for(lambda: redis_conn.exists("egoejo:scheduler:alive"), 60, command, log_dir)
        else:
            path = check.removeprefix("http:")
            host = "[::1]" if "[::]" in command else "127.0.0.1"
            _wait_for(lambda: _answers(f"http://{host}:{port}{path}"), 60, command, log_dir)
        time.sleep(0.5)  # past start-up: the stop is the one an operator sends to a running process
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{command} still running {STOP_WITHIN} s after one SIGTERM\n{logs(log_dir)}")
        took = time.monotonic() - started
        assert took < STOP_WITHIN
        assert process.returncode in (0, -signal.SIGTERM), f"{command}: exit {process.returncode}\n{logs(log_dir)}"
        assert "Traceback" not in logs(log_dir), logs(log_dir)
    finally:
        stop_all([process])


def _start(env: dict[str, str], argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([PYTHON, *argv], cwd=ROOT, env=as_role(env, argv), stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # it answers (a login redirect, a 401)
    except OSError:
        return False


def _wait_for(condition, timeout: float, what: str, log_dir: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"no sign of {what} in {timeout} s\n{logs(log_dir)}")
