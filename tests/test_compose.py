"""docker-compose.yml: valid, complete, and free of secrets (checked by `docker compose config`; no engine needed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
QUEUE_TIMEOUTS = {"emails": 60, "images": 300, "metrics": 600}


def compose_command() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    message = "neither `docker compose` nor `docker-compose` is installed (scripts/test installs docker-compose)"
    pytest.skip(message)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:  # type: ignore[type-arg]
    project = tmp_path_factory.mktemp("compose")
    shutil.copy(ROOT / "docker-compose.yml", project / "docker-compose.yml")
    (project / "deploy" / "env").mkdir(parents=True)
    for example in (ROOT / "deploy" / "env").glob("*.env.example"):
        shutil.copy(example, project / "deploy" / "env" / example.name.removesuffix(".example"))
    for directory in ("minio", "prometheus"):
        shutil.copytree(ROOT / "deploy" / directory, project / "deploy" / directory)
    result = subprocess.run(
        [*compose_command(), "-f", str(project / "docker-compose.yml"), "--profile", "dev", "--profile", "release",
         "--profile", "monitoring", "config"],
        cwd=project, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def seconds(value: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    total, number = 0, ""
    for char in str(value):
        if char.isdigit():
            number += char
        else:
            total += int(number) * units[char]
            number = ""
    return total + (int(number) if number else 0)


def test_the_stack_has_every_service(resolved):
    assert set(resolved["services"]) == {
        "redis", "postgres", "migrate", "web", "worker-light", "worker-images", "scheduler", "dashboard", "mailcatcher",
        "minio", "minio-bucket", "prometheus",
    }


def test_redis_keeps_its_data_and_reports_health(resolved):
    redis = resolved["services"]["redis"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert "healthcheck" in redis


def test_migrations_are_a_release_step_not_part_of_every_start(resolved):
    assert resolved["services"]["migrate"]["command"][-2:] == ["migrate", "--noinput"]
    assert resolved["services"]["migrate"]["profiles"] == ["release"]
    for name in ("web", "worker-light", "worker-images", "scheduler"):
        assert "migrate" not in " ".join(resolved["services"][name]["command"])


def test_workers_get_to_finish_their_longest_job(resolved):
    light = resolved["services"]["worker-light"]
    images = resolved["services"]["worker-images"]
    assert "rqpool" in light["command"] and "emails" in light["command"] and "metrics" in light["command"]
    assert "rqworker" in images["command"] and "images" in images["command"]
    assert seconds(light["stop_grace_period"]) > max(QUEUE_TIMEOUTS["emails"], QUEUE_TIMEOUTS["metrics"])
    assert seconds(images["stop_grace_period"]) > QUEUE_TIMEOUTS["images"]
    for name in ("web", "worker-light", "worker-images", "scheduler", "dashboard", "redis", "postgres"):
        assert resolved["services"][name]["restart"] == "unless-stopped"


def test_the_dashboard_is_not_published_and_the_scheduler_is_single(resolved):
    assert "ports" not in resolved["services"]["dashboard"]
    assert resolved["services"]["scheduler"].get("deploy", {}).get("replicas", 1) == 1


def test_no_queue_rests_on_a_single_worker_process(resolved):
    """One images worker frozen or restarting would hold its queue alone, and so would one pool,
    whose members die with its parent: the images service and the light pool run two replicas
    each, in Railway's files too, and a pool two members."""
    assert resolved["services"]["worker-images"]["deploy"]["replicas"] >= 2
    assert resolved["services"]["worker-light"]["deploy"]["replicas"] >= 2
    command = resolved["services"]["worker-light"]["command"]
    assert int(command[command.index("--workers") + 1]) >= 2
    for service in ("worker-light", "worker-images"):
        assert json.loads((ROOT / "railway" / f"{service}.json").read_text())["deploy"]["numReplicas"] >= 2, service


def test_no_secret_in_the_compose_file():
    text = (ROOT / "docker-compose.yml").read_text()
    for secret_name in ("SECRET_KEY", "PASSWORD", "TOKEN"):
        for line in text.splitlines():
            assert not (secret_name in line and "=" in line and not line.strip().startswith("#")), line
    assert "env_file: [deploy/env/app.env" in text
    assert "deploy/env/*.env" in (ROOT / ".gitignore").read_text()


def test_the_image_runs_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "\nUSER egoejo" in dockerfile
    assert "FROM python:3.11." in dockerfile


def test_redis_accepts_the_previous_password_during_a_rotation_and_its_healthcheck_authenticates(tmp_path):
    import uuid

    import redis as redis_client

    from tests.security.redis_acl import ENTRYPOINT, acl_redis_server, new_passwords, script_env, user

    new, old = new_passwords(), uuid.uuid4().hex
    with acl_redis_server(tmp_path, new, REDIS_WORKER_PASSWORD_PREVIOUS=old) as port:
        for password in (new["worker"], old):
            assert redis_client.Redis(port=port, username=user("worker"), password=password).ping()
        check = ["sh", str(ENTRYPOINT), "healthcheck", "-p", str(port)]
        assert subprocess.run(check, env=script_env(tmp_path, new), capture_output=True).returncode == 0
        assert subprocess.run(check, env=script_env(tmp_path, {**new, "metrics": "wrong"}), capture_output=True).returncode != 0


APP_SERVICES = ("migrate", "web", "worker-light", "worker-images", "scheduler", "dashboard")


def test_media_is_in_object_storage_not_on_a_shared_volume(resolved):
    env = dict(line.split("=", 1) for line in (ROOT / "deploy" / "env" / "app.env.example").read_text().splitlines() if "=" in line and not line.startswith("#"))
    assert env["MEDIA_STORAGE"] == "s3" and env["AWS_S3_ENDPOINT_URL"] == "http://minio:9000"
    for name in APP_SERVICES:
        service = resolved["services"][name]
        assert not service.get("volumes"), (name, service.get("volumes"))  # nothing shared between hosts but services
        assert service["depends_on"]["minio-bucket"]["condition"] == "service_completed_successfully"
    bucket = resolved["services"]["minio-bucket"]
    assert bucket["restart"] == "no" and bucket["depends_on"]["minio"]["condition"] == "service_healthy"
    script = (ROOT / "deploy" / "minio" / "create-bucket.sh").read_text()
    assert "--ignore-existing" in script and "anonymous set none" in script  # idempotent, private
    assert "healthcheck" in resolved["services"]["minio"]


def test_prometheus_scrapes_metrics_with_the_token_under_the_monitoring_profile(resolved):
    prometheus = resolved["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["web:8000"]
    token_file = job["authorization"]["credentials_file"]
    entrypoint = (ROOT / "deploy" / "prometheus" / "entrypoint.sh").read_text()
    assert f"> {token_file}" in entrypoint and "$METRICS_TOKEN" in entrypoint
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]
    # docker-compose 1.x prints short syntax ("src:dst:mode"), Docker's plugin long syntax.
    mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}:{'ro' if v.get('read_only') else 'rw'}" for v in prometheus["volumes"]]
    assert any(m.endswith("deploy/prometheus:/etc/prometheus:ro") for m in mounts), mounts
