"""`manage.py rqdashboard`: rq-dashboard on the queues' Redis, with credentials required."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run rq-dashboard (bound to 127.0.0.1 by default; HTTP basic auth from the environment)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default=os.environ.get("RQ_DASHBOARD_BIND", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("RQ_DASHBOARD_PORT", "9181")))

    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("RQ_DASHBOARD_USERNAME", "")
        password = os.environ.get("RQ_DASHBOARD_PASSWORD", "")
        if not (username and password):
            raise CommandError("Set RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD: the dashboard never runs open.")
        executable = shutil.which("rq-dashboard") or os.path.join(os.path.dirname(sys.executable), "rq-dashboard")
        argv = [
            executable,
            "--bind", options["bind"],
            "--port", str(options["port"]),
            "--redis-url", settings.RQ_QUEUES_URL,
            "--json",
        ]
        # Credentials stay in the environment (rq-dashboard reads RQ_DASHBOARD_USERNAME and
        # RQ_DASHBOARD_PASSWORD itself) rather than on a command line that `ps` shows.
        os.execv(executable, argv)
