"""scripts/run's supervisor (scripts/lib/supervise.py) and var/dev.env (scripts/lib/dev_env.py)."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

from tests import redis_db

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"scripts_lib_{name}", ROOT / "scripts" / "lib" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"scripts_lib_{name}"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


supervise = _load("supervise")
dev_env = _load("dev_env")


def test_an_old_dev_env_gains_a_metrics_token_and_keeps_its_secrets(tmp_path: Path):
    path = tmp_path / "dev.env"
    path.write_text("DJANGO_SECRET_KEY=kept\nDEV_ADMIN_USERNAME=admin\n")
    assert "METRICS_TOKEN" in dev_env.ensure_secrets(path)
    values = dict(line.split("=", 1) for line in path.read_text().splitlines())
    assert values["DJANGO_SECRET_KEY"] == "kept" and len(values["METRICS_TOKEN"]) >= 24
    assert dev_env.ensure_secrets(path) == []


def test_the_stack_section_is_rewritten_not_appended(tmp_path: Path):
    path = tmp_path / "dev.env"
    dev_env.ensure_secrets(path)
    env = {"WEB_PORT": "8000", "RQ_DASHBOARD_PORT": "9181", "REDIS_URL": "redis://127.0.0.1:6379"}
    dev_env.write_stack(path, env)
    dev_env.write_stack(path, {**env, "WEB_PORT": "8001"})
    text = path.read_text()
    assert text.count(dev_env.STACK_MARKER) == 1
    assert "WEB_PORT=8001" in text and "METRICS_URL=http://127.0.0.1:8001/metrics" in text
    assert dev_env.ensure_secrets(path) == [] and text == path.read_text()


def test_a_crashing_process_restarts_then_is_given_up_and_the_others_run(monkeypatch, tmp_path: Path, capsys):
    monkeypatch.setattr(supervise, "FIRST_BACKOFF", 0.1)
    monkeypatch.setattr(supervise, "MAX_RESTARTS", 2)
    crasher = supervise.Process("crasher", "sh -c 'exit 3'")
    sleeper = supervise.Process("sleeper", "sleep 30")
    supervisor = supervise.Supervisor([crasher, sleeper], tmp_path)
    runner = threading.Thread(target=supervisor.run)
    runner.start()
    deadline = time.monotonic() + 10
    while not crasher.given_up and time.monotonic() < deadline:
        time.sleep(0.05)
    assert crasher.given_up
    assert sleeper.popen is not None and sleeper.popen.poll() is None
    supervisor.stopping.set()
    runner.join(15)
    out = capsys.readouterr().out
    assert "crasher exited with 3; restarting in 0.1s" in out
    assert "giving up on it" in out and "all stopped" in out
    assert sleeper.popen.poll() is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(log: list[str], pattern: str, timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(log):
            match = re.search(pattern, line)
            if match:
                return match
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in:\n" + "".join(log[-60:]))


@pytest.mark.e2e
def test_a_killed_pool_restarts_and_sigint_stops_all(tmp_path: Path, redis_db_index: int):
    """scripts/run end to end: var/dev.env, demo projects, kill -9 of the pool, /metrics with the token, Ctrl-C."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "RQ_", "REDIS_", "EMAIL_", "DATABASE_", "METRICS_"))}
    web_port = _free_port()
    env.update(
        EGOEJO_VAR_DIR=str(tmp_path / "var"),
        REDIS_URL=redis_db.redis_url(),
        RQ_REDIS_DB=str(redis_db_index),
        WEB_PORT=str(web_port),
        RQ_DASHBOARD_PORT=str(_free_port()),
    )
    stack = subprocess.Popen(
        ["scripts/run", "--only", "web,worker-light"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log: list[str] = []
    assert stack.stdout is not None
    threading.Thread(target=lambda: log.extend(stack.stdout), daemon=True).start()  # type: ignore[arg-type]
    try:
        first = int(_wait_for(log, r"worker-light started \(pid (\d+)\)", 60).group(1))
        assert "demo projects: 3 created" in "".join(log)
        _wait_for(log, r"worker-light +\|", 20)  # the pool is up and talking
        os.kill(first, signal.SIGKILL)
        _wait_for(log, r"worker-light exited with -9; restarting in 1s", 10)
        _wait_for(log, rf"worker-light started \(pid (?!{first}\))\d+\)", 10)
        assert stack.poll() is None, "".join(log)
        values = dict(line.split("=", 1) for line in (tmp_path / "var" / "dev.env").read_text().splitlines() if "=" in line and not line.startswith("#"))
        assert values["WEB_PORT"] == str(web_port) and values["REDIS_URL"] == redis_db.redis_url()
        request = urllib.request.Request(values["METRICS_URL"], headers={"Authorization": f"Bearer {values['METRICS_TOKEN']}"})
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        stack.send_signal(signal.SIGINT)
        assert stack.wait(20) == 0
        _wait_for(log, r"all stopped", 5)
    finally:
        if stack.poll() is None:  # SIGTERM stops the process groups too; SIGKILL would leave them
            stack.terminate()
            try:
                stack.wait(20)
            except subprocess.TimeoutExpired:
                stack.kill()
                stack.wait()
