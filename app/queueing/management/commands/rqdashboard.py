"""`manage.py rqdashboard`: the hardened rq-dashboard (app/queueing/dashboard.py) under gunicorn."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run rq-dashboard: bound to 127.0.0.1 by default, login required, hardened against XSS and CSRF."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default=os.environ.get("RQ_DASHBOARD_BIND", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("RQ_DASHBOARD_PORT", "9181")))

    def handle(self, *args: Any, **options: Any) -> None:
        if not (os.environ.get("RQ_DASHBOARD_USERNAME") and os.environ.get("RQ_DASHBOARD_PASSWORD")):
            raise CommandError("Set RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD: the dashboard never runs open.")
        # Credentials stay in the environment, not on a command line that `ps` shows.
        argv = [
            sys.executable, "-m", "gunicorn", "app.queueing.dashboard:wsgi_app()",
            "--bind", f"{options['bind']}:{options['port']}",
            "--workers", "1", "--threads", "4", "--access-logfile", "-",
        ]
        os.execv(sys.executable, argv)
