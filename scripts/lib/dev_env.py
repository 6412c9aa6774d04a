"""var/dev.env: the development secrets (generated once) and the running stack (rewritten each start).

    python scripts/lib/dev_env.py secrets var/dev.env   # create it, add any secret it lacks
    python scripts/lib/dev_env.py stack var/dev.env     # rewrite the stack section from the environment

scripts/run sources only the secrets (the lines above STACK_MARKER); the stack section records what
this start used, for people and tools: URLs, ports, the Redis URL. Tested by tests/test_dev_stack.py.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

STACK_MARKER = "# --- the running stack, rewritten by scripts/run at each start ---"
SECRETS: dict[str, Callable[[], str]] = {
    "DJANGO_SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "DEV_ADMIN_USERNAME": lambda: "admin",
    "DEV_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(12),
    "RQ_DASHBOARD_USERNAME": lambda: "admin",
    "RQ_DASHBOARD_PASSWORD": lambda: secrets.token_urlsafe(12),
    # /metrics wants it (app/views/metrics.py): curl -H "Authorization: Bearer $METRICS_TOKEN" .../metrics
    "METRICS_TOKEN": lambda: secrets.token_urlsafe(32),
}


def split(text: str) -> tuple[list[str], list[str]]:
    lines = text.splitlines()
    if STACK_MARKER in lines:
        at = lines.index(STACK_MARKER)
        return lines[:at], lines[at:]
    return lines, []


def ensure_secrets(path: Path) -> list[str]:
    """Add the secrets the file lacks; returns their names."""
    head, stack = split(path.read_text() if path.exists() else "")
    present = {line.partition("=")[0].strip() for line in head if "=" in line and not line.startswith("#")}
    added = [key for key in SECRETS if key not in present]
    head += [f"{key}={SECRETS[key]()}" for key in added]
    path.write_text("\n".join(head + stack) + "\n")
    path.chmod(0o600)
    return added


def write_stack(path: Path, env: dict[str, str]) -> None:
    head, _ = split(path.read_text())
    web = f"http://127.0.0.1:{env['WEB_PORT']}"
    stack = [
        STACK_MARKER,
        f"WEB_PORT={env['WEB_PORT']}",
        f"RQ_DASHBOARD_PORT={env['RQ_DASHBOARD_PORT']}",
        f"REDIS_URL={env['REDIS_URL']}",
        f"WEB_URL={web}/",
        f"API_URL={web}/api/",
        f"ADMIN_URL={web}/admin/",
        f"DJANGO_RQ_URL={web}/admin/django-rq/",
        f"RQ_DASHBOARD_URL=http://127.0.0.1:{env['RQ_DASHBOARD_PORT']}/",
        f"METRICS_URL={web}/metrics",
        f"HEALTHZ_URL={web}/healthz",
    ]
    path.write_text("\n".join(head + stack) + "\n")


def main(argv: list[str]) -> int:
    action, path = argv[0], Path(argv[1])
    if action == "secrets":
        added = ensure_secrets(path)
        if added:
            print(f"var/dev.env: generated {', '.join(added)}", file=sys.stderr)
    elif action == "stack":
        write_stack(path, dict(os.environ))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
