"""Health endpoints and start-up, attacked: reading the platform's internals anonymously, a
worker outage taking the API down, and a deployment with the example files' secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STRONG = "Q1w2E3r4T5y6U7i8O9p0-a1S2d3F4g5H6j7K8l9"


def test_an_anonymous_client_gets_the_verdict_not_the_internals(client, db):
    response = client.get("/healthz")
    body = response.json()
    assert set(body) == {"status"}, body  # no worker counts, queue ages, scheduler beat or reasons


def test_the_web_stays_live_while_workers_and_scheduler_are_down(client, db):
    # No worker and no scheduler registered in this (flushed) Redis: the platform is not ready...
    assert client.get("/healthz").status_code == 503
    # ...but the web process and its database are fine: its own check must say so.
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_the_web_containers_own_healthcheck_is_liveness():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    check = " ".join(compose["services"]["web"]["healthcheck"]["test"])
    assert "/livez" in check and "/healthz" not in check


def _start(overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "RQ_", "REDIS_", "EMAIL_", "METRICS_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "app.settings", "DJANGO_SECRET_KEY": STRONG, "EMAIL_URL": "console://", **overrides})
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "name, value",
    [
        ("DJANGO_SECRET_KEY", "change-me-to-50-random-characters"),
        ("DJANGO_SECRET_KEY", "<generate a long random key here please>"),
        ("DJANGO_SECRET_KEY", "s3cr3t-but-short"),
        ("METRICS_TOKEN", "change-me"),
        ("RQ_DASHBOARD_PASSWORD", "change-me"),
        ("RQ_API_TOKEN", "<token>"),
        ("REDIS_URL", "redis://egoejo:change-me@127.0.0.1:6379"),
    ],
)
def test_production_refuses_placeholder_and_short_secrets(name: str, value: str):
    result = _start({name: value})
    assert result.returncode != 0, f"started with {name}={value!r}"
    assert name.split("_URL")[0] in result.stderr  # the refusal names the setting


def test_production_refuses_the_compose_example_env_file_as_it_is():
    example = {}
    for name in ("app", "web"):  # what the web service reads
        for line in (ROOT / "deploy" / "env" / f"{name}.env.example").read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                example[key.strip()] = value.strip()
    example.update(DATABASE_URL="sqlite:///:memory:", REDIS_URL=example["REDIS_URL"].replace("//redis:", "//127.0.0.1:"))
    result = _start(example)
    assert result.returncode != 0 and "placeholder" in result.stderr
