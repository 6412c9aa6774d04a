#!/usr/bin/env python
"""Django's command line. In a development checkout it first reads var/dev.env, as scripts/run does."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEVELOPMENT_SETTINGS = "app.settings"
_OFF = {"0", "false", "no", "off", ""}


def _env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as scripts/run's `source` reads them (comments, `export`, plain quotes)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def dev_env_path() -> Path:
    return Path(os.environ.get("EGOEJO_VAR_DIR") or ROOT / "var") / "dev.env"


def load_development_env() -> bool:
    """Development only: the credentials scripts/run generated, then .env, under what the shell set.

    Never in production: not for another settings module, not when a secret key is already in
    the environment, not when DJANGO_DEBUG is explicitly off (here or in .env), and not without
    var/dev.env (only scripts/run writes it; images never contain var/).
    """
    if os.environ.get("DJANGO_SETTINGS_MODULE", DEVELOPMENT_SETTINGS) != DEVELOPMENT_SETTINGS:
        return False
    if os.environ.get("DJANGO_SECRET_KEY") or os.environ.get("DJANGO_DEBUG", "1").strip().lower() in _OFF:
        return False
    path = dev_env_path()
    if not path.is_file():
        return False
    values = _env_file(path)
    local = ROOT / ".env"
    if local.is_file():
        values.update(_env_file(local))
    values.setdefault("DJANGO_DEBUG", "1")
    if values["DJANGO_DEBUG"].strip().lower() in _OFF:
        return False
    for key, value in values.items():
        os.environ.setdefault(key, value)
    return True


def main() -> None:
    load_development_env()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEVELOPMENT_SETTINGS)
    from django.core.exceptions import ImproperlyConfigured

    try:
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - loads the settings now, so their error is the one shown
    except ImproperlyConfigured as exc:
        # Left to Django, a settings error surfaces as a KeyError traceback from its command
        # lookup (the project's commands are unknown without settings), then this message.
        hint = ""
        if not dev_env_path().is_file() and os.environ["DJANGO_SETTINGS_MODULE"] == DEVELOPMENT_SETTINGS:
            hint = " For development, run scripts/run once: it writes var/dev.env, which manage.py then reads."
        sys.exit(f"manage.py: {exc}{hint}")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
