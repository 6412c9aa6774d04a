"""deploy/prometheus/rules.yml: valid, tested on synthetic series, and only over series the app exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RULE_TESTS = ROOT / "tests" / "prometheus" / "rules_test.yml"
EXPECTED_ALERTS = {
    "EgoejoMetricsDown", "QueueHasNoWorker", "QueueJobsLate", "JobFailureRatioHigh", "SchedulerHeartbeatStale",
    "OutboxPendingTooLong", "JobsAbandonedByDyingWorkers", "RedisMemoryNearLimit", "JobRefused", "JobKeepsRetrying",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is not installed (scripts/test installs Debian's prometheus package when run as root)"
        pytest.skip(message)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_the_rules_are_valid():
    result = run("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_when_it_should_and_not_before():
    result = run("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_and_documented():
    rules = yaml.safe_load(RULES.read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    assert alerts == EXPECTED_ALERTS
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test.get("alert_rule_test", [])}
    assert tested == alerts
    operations = (ROOT / "docs" / "operations.md").read_text()
    for alert in alerts:
        assert f"`{alert}`" in operations, f"docs/operations.md does not explain {alert}"


def test_the_rules_use_only_series_the_app_exports(client, settings, db, redis_conn):
    """A renamed metric would silence an alert for ever: every egoejo_* name in the rules is on /metrics."""
    import time

    from app.queueing import keys
    from app.queueing import stats as job_metrics

    settings.METRICS_TOKEN = "prom-token"
    job_metrics.record(redis_conn, "app.jobs.emails.send_email", "emails", "success", 0.01, 0.01)  # a job has run
    redis_conn.set(keys.SCHEDULER_ALIVE, time.time(), ex=60)  # and a scheduler is alive
    exported = client.get("/metrics", HTTP_AUTHORIZATION="Bearer prom-token").content.decode()
    names = {line.split("{")[0].split(" ")[0] for line in exported.splitlines() if line and not line.startswith("#")}
    used = set(re.findall(r"\begoejo_[a-z_]+", RULES.read_text()))
    assert used and used <= names, used - names
