"""manage.py in a development checkout: reads var/dev.env (never in production) and fails in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import redis_db

ROOT = Path(__file__).resolve().parents[1]
SHOW = "from django.conf import settings; print(settings.SECRET_KEY, settings.DEBUG)"


def _clean_env(var_dir: Path, redis_db_index: int, **extra: str) -> dict[str, str]:
    """A shell with the venv active and nothing of the project's set, as after `. .venv/bin/activate`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "RQ_", "REDIS_", "EMAIL_", "DATABASE_"))}
    env.update(EGOEJO_VAR_DIR=str(var_dir), REDIS_URL=redis_db.redis_url(), RQ_REDIS_DB=str(redis_db_index), **extra)
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def dev_var(tmp_path: Path) -> Path:
    """var/ as scripts/run leaves it: dev.env with the generated secret and logins."""
    var = tmp_path / "var"
    var.mkdir()
    (var / "dev.env").write_text(
        "DJANGO_SECRET_KEY=generated-dev-secret-0123456789\nDEV_ADMIN_USERNAME=admin\n"
        "RQ_DASHBOARD_USERNAME=admin\nRQ_DASHBOARD_PASSWORD=dash-pass\n"
    )
    return var


def test_development_commands_read_var_dev_env(dev_var: Path, redis_db_index: int):
    result = _manage(_clean_env(dev_var, redis_db_index), "shell", "-c", SHOW)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["generated-dev-secret-0123456789", "True"]
    stats = _manage(_clean_env(dev_var, redis_db_index), "rqstats")
    assert stats.returncode == 0, stats.stderr
    assert "emails" in stats.stdout


def test_the_shell_environment_wins_over_dev_env(dev_var: Path, redis_db_index: int):
    env = _clean_env(dev_var, redis_db_index, DJANGO_SECRET_KEY="from-the-shell-0123456789", DJANGO_DEBUG="1")
    assert _manage(env, "shell", "-c", SHOW).stdout.strip().splitlines()[-1].split() == ["from-the-shell-0123456789", "True"]


@pytest.mark.parametrize(
    "production",
    [{"DJANGO_DEBUG": "0"}, {"DJANGO_DEBUG": "false"}, {"DJANGO_SETTINGS_MODULE": "tests.settings"}],
    ids=["debug-0", "debug-false", "other-settings"],
)
def test_dev_env_is_never_read_in_production(dev_var: Path, redis_db_index: int, production: dict[str, str]):
    result = _manage(_clean_env(dev_var, redis_db_index, **production), "shell", "-c", SHOW)
    assert "generated-dev-secret" not in result.stdout + result.stderr


@pytest.mark.parametrize("command", ["rqstats", "rqsuspend", "failedjobs"])
def test_without_configuration_a_command_fails_in_one_clear_line(tmp_path: Path, redis_db_index: int, command: str):
    result = _manage(_clean_env(tmp_path / "var", redis_db_index), command)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "KeyError" not in result.stderr
    assert lines[0].startswith("manage.py: Set DJANGO_SECRET_KEY") and "scripts/run" in lines[0]
