"""Deploying with least privilege: each compose service gets only the secrets it uses, nothing internal
is published beyond the host's loopback, the image's code is not the runtime user's to rewrite, and
production answers with HSTS, a CSP and the other secure headers (`check --deploy` clean)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {"web": "web", "worker-light": "worker", "worker-images": "worker", "scheduler": "scheduler", "dashboard": "dashboard"}
INFRASTRUCTURE = ("postgres", "redis", "minio", "minio-bucket", "prometheus", "mailcatcher")


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_files(service: dict) -> list[str]:  # type: ignore[type-arg]
    files = service.get("env_file", [])
    return [files] if isinstance(files, str) else list(files)


def read_env(path: str) -> dict[str, str]:
    """An env file's variables, from its committed example (deploy/env/web.env.example for deploy/env/web.env)."""
    example = ROOT / f"{path}.example"
    values = {}
    for line in example.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def service_env(name: str) -> dict[str, str]:
    """What a service's container sees: its env files in order (later ones win), then `environment:`."""
    services = compose()["services"]
    service = services[name]
    env: dict[str, str] = {}
    for path in env_files(service):
        env.update(read_env(path))
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    env.update({k: str(v) for k, v in environment.items()})
    return env


def test_each_service_gets_only_the_secrets_it_uses():
    services = compose()["services"]
    seen = {name: service_env(name) for name in services}
    holders = {
        "DJANGO_SECRET_KEY": {"web", "worker-light", "worker-images", "scheduler", "dashboard", "migrate"},
        "DATABASE_URL": {"web", "worker-light", "worker-images", "scheduler", "dashboard", "migrate"},
        "RQ_DASHBOARD_PASSWORD": {"dashboard"},
        "METRICS_TOKEN": {"web", "prometheus"},
        "RQ_API_TOKEN": {"web"},
        "AWS_SECRET_ACCESS_KEY": {"web", "worker-light", "worker-images", "minio-bucket"},
        "MINIO_ROOT_PASSWORD": {"minio", "minio-bucket"},
        "POSTGRES_PASSWORD": {"postgres"},
        "REDIS_METRICS_PASSWORD": {"web", "redis"},
    }
    for variable, allowed in holders.items():
        assert {name for name, env in seen.items() if env.get(variable)} == allowed, variable
    # The SMTP account: the workers only; every other app process has EMAIL_URL=none://.
    smtp = {name for name, env in seen.items() if env.get("EMAIL_URL", "").startswith("smtp")}
    assert smtp == {"worker-light", "worker-images"}
    for name in INFRASTRUCTURE:
        assert not {"DJANGO_SECRET_KEY", "EMAIL_URL", "DATABASE_URL", "RQ_DASHBOARD_PASSWORD"} & set(seen[name]), name


def test_each_app_service_connects_as_its_own_redis_role_and_holds_no_other_roles_password():
    redis_env = service_env("redis")
    passwords = {role: redis_env[f"REDIS_{role.upper()}_PASSWORD"] for role in ("web", "worker", "scheduler", "dashboard", "metrics")}
    assert len(set(passwords.values())) == len(passwords)  # distinct placeholders, so that a leak shows below
    for name, role in APP_SERVICES.items():
        env = service_env(name)
        assert env["REDIS_USERNAME"] == f"egoejo-{role}" and env["REDIS_PASSWORD"] == passwords[role], name
        assert "@" not in env["REDIS_URL"]  # no shared credentials in the URL
        foreign = {other for other, password in passwords.items() if other != role and password in env.values()}
        assert foreign <= ({"metrics"} if name == "web" else set()), (name, foreign)
    assert service_env("migrate").get("REDIS_PASSWORD") is None


def test_nothing_internal_is_published_beyond_the_hosts_loopback():
    services = compose()["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)  # never on all interfaces
    for name in ("redis", "postgres", "dashboard", "scheduler", "worker-light", "worker-images", "minio-bucket"):
        assert "ports" not in services[name], name
    assert services["minio"]["ports"] == ["127.0.0.1:9000:9000"]  # the S3 API for the proxy; the console (9001) nowhere


def _version(image: str) -> tuple[int, ...]:
    tag = image.rpartition(":")[2]
    return tuple(int(part) for part in re.findall(r"\d+", tag.split("-")[0])[:2])


def test_compose_runs_supported_releases_of_its_services():
    services = compose()["services"]
    assert services["redis"]["image"].startswith("redis:") and _version(services["redis"]["image"]) >= (8, 0)
    assert _version(services["postgres"]["image"]) >= (17,)
    assert services["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql"]  # 18's layout
    for name in ("minio", "minio-bucket"):  # Docker Hub's minio/* is gone: pinned releases from Quay
        assert services[name]["image"].startswith("quay.io/minio/") and ":RELEASE.2025-" in services[name]["image"], name
    assert _version(services["prometheus"]["image"].replace(":v", ":")) >= (3,)


def test_the_images_code_belongs_to_root_and_only_media_to_the_runtime_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    instructions = re.sub(r"\\\n\s*", " ", dockerfile)
    assert "\nUSER egoejo" in dockerfile and "--chown" not in instructions  # no COPY hands files to the runtime user
    [copy] = [line for line in instructions.splitlines() if line.startswith("COPY . ")]
    assert copy == "COPY . ."
    run = next(line for line in instructions.splitlines() if line.startswith("RUN") and "collectstatic" in line)
    assert "chown -R root:root /srv/egoejo" in run and "go=rX" in run  # readable, never writable, by others
    chowns = re.findall(r"chown (?:-R )?(\S+) (\S+)", instructions)
    assert [(owner, path) for owner, path in chowns if owner.startswith("egoejo")] == [("egoejo:egoejo", "/srv/egoejo/var/media")]
    assert instructions.index("USER egoejo") > instructions.index("collectstatic")


def _production(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REDIS_", "EMAIL_", "DATABASE_", "RQ_", "AWS_", "MEDIA_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="app.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(48),
        DJANGO_ALLOWED_HOSTS="egoejo.example.org,testserver",
        DATABASE_URL="sqlite:///:memory:",
        EMAIL_URL="none://",
        **extra,
    )
    return env


def test_check_deploy_is_clean_in_production():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=_production(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


PROBE = """
import json
from django.test import Client
client = Client()
page = client.get('/admin/login/', secure=True, HTTP_HOST='egoejo.example.org')
api = client.get('/api/auth/csrf/', secure=True, HTTP_HOST='egoejo.example.org')
plain = client.get('/api/auth/csrf/', HTTP_HOST='egoejo.example.org')
probe = client.get('/livez', HTTP_HOST='egoejo.example.org')
print(json.dumps({'page': [page.status_code, dict(page.headers)], 'api': [api.status_code, dict(api.headers)],
                  'plain': [plain.status_code, plain.headers.get('Location')], 'probe': probe.status_code}))
"""


def test_production_answers_with_hsts_csp_and_the_other_secure_headers():
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", PROBE], cwd=ROOT, env=_production(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    for status, headers in (answers["page"], answers["api"]):
        assert status == 200
        assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert "camera=()" in headers["Permissions-Policy"]
    assert answers["plain"] == [301, "https://egoejo.example.org/api/auth/csrf/"]  # http is redirected...
    assert answers["probe"] in (200, 503)  # ...but not the container's own probe
