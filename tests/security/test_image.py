"""The image, attacked: pulling it (or any layer of it) and reading the secrets copied in with `COPY . .`.

The build context is computed from .dockerignore with docker-py's implementation of Docker's
rules (`docker.utils.build.exclude_paths`, what `docker build` through the SDK sends), over a
copy of the checkout in which the files an operator or developer keeps beside it are planted.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

ROOT = Path(__file__).resolve().parents[2]

# What lives beside a checkout on a build host, and must never reach a layer.
PLANTED_SECRETS = [
    "deploy/compose.env",
    "deploy/env/web.env",
    "deploy/env/redis.env",
    ".env",
    ".env.production",
    "app/.env",
    "var/dev.env",
    "var/db.sqlite3",
    "var/mail/0001.eml",
    "var/media/uploads/originals/x.jpg",
    "deploy/tls/server.key",
    "deploy/tls/server.pem",
    "id_rsa",
    ".git/config",
    ".venv/bin/python",
    "app/__pycache__/settings.cpython-311.pyc",
    "tests/settings.py",
]
NEEDED = ["app/__init__.py", "app/settings/__init__.py", "app/templates/emails/en/welcome.txt", "manage.py",
          "requirements.txt", "deploy/gunicorn.conf.py", "railway/Procfile.worker"]


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> set[str]:  # type: ignore[type-arg]
    checkout = tmp_path_factory.mktemp("checkout")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
    for name in PLANTED_SECRETS:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text("SECRET=planted\n")
    shutil.copy2(ROOT / ".dockerignore", checkout / ".dockerignore")
    patterns = (checkout / ".dockerignore").read_text().splitlines()
    return {path for path in exclude_paths(str(checkout), patterns) if (checkout / path).is_file()}


def test_no_secret_beside_the_checkout_reaches_the_build_context(context: set[str]):
    leaked = sorted(set(PLANTED_SECRETS) & context)
    assert not leaked, f"copied into the image by COPY . .: {leaked}"


def test_the_build_context_is_an_allow_list(context: set[str]):
    tops = {path.split("/", 1)[0] for path in context}
    assert tops <= {"app", "manage.py", "requirements.txt", "deploy", "railway", "Dockerfile", ".dockerignore"}, tops
    assert {path for path in context if path.startswith("railway/")} == {"railway/Procfile.worker"}
    assert {path for path in context if path.startswith("deploy/")} == {"deploy/gunicorn.conf.py"}
    for name in NEEDED:
        assert name in context, f"{name} is needed by the image"
