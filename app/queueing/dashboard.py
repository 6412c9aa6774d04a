"""rq-dashboard, hardened, as the operators' browser view of queues, workers and jobs.

rq-dashboard 0.9 alone: HTTP basic auth only from its CLI, job descriptions and tracebacks
rendered unescaped by its client-side templates (stored XSS: job arguments and error texts
carry user input), POST actions without CSRF protection and a state-changing GET
(`/requeue/<queue>`). This wrapper keeps rq-dashboard's pages and adds:

- credentials required (RQ_DASHBOARD_USERNAME / RQ_DASHBOARD_PASSWORD), compared in constant time;
- a Content-Security-Policy whose only allowed scripts are rq-dashboard's own files and the
  exact inline scripts this response carries (by SHA-256), so markup injected at run time can
  never execute (no inline event handlers, no injected <script>);
- every string in the JSON the pages render is HTML-escaped, so a payload shows as text;
- state changes only by POST, and only same-origin (Origin or Referer must match).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from pathlib import Path
from secrets import compare_digest
from typing import Any

from flask import Flask, Response, abort, request
from rq.serializers import JSONSerializer

_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"text/template\")[^>]*>(.*?)</script>", re.S | re.I)
_STATE_CHANGING = ("/delete", "/requeue", "/empty", "/compact")


def escape_strings(value: Any) -> Any:
    if isinstance(value, str):
        return html.escape(value, quote=True)
    if isinstance(value, list):
        return [escape_strings(item) for item in value]
    if isinstance(value, dict):
        return {key: escape_strings(item) for key, item in value.items()}
    return value


def content_security_policy(body: str) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(body)
    )
    return (
        "default-src 'self'; "
        # 'unsafe-eval': rq-dashboard compiles its own <script type="text/template"> blocks
        # with underscore's _.template (new Function). Those templates are static server
        # markup, never data; what data could inject (inline handlers, <script> elements)
        # stays blocked because 'unsafe-inline' is absent.
        f"script-src 'self' 'unsafe-eval' {hashes}; ".replace("  ", " ")
        + "style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


def _register_queues(connection: Any) -> None:
    """RQ lists a queue only once something was enqueued on it; operators expect all three."""
    from rq import Queue

    from . import registry, rq_compat

    names = list(registry.queues())
    if names:
        connection.sadd(Queue.redis_queues_keys, *(rq_compat.queue_key(name) for name in names))


def _record_operator_deletes(path: str, connection: Any) -> None:
    """rq-dashboard deletes with rq's own classes: tell the outbox first, so a deleted job stays deleted."""
    from rq import Queue
    from rq import registry as rq_registries

    from .ends import mark_cancelled

    parts = path.strip("/").split("/")
    if len(parts) == 3 and parts[0] == "job" and parts[2] == "delete":
        mark_cancelled([parts[1]], "deleted by an operator (rq-dashboard)")
    elif len(parts) == 4 and parts[0] == "queue" and parts[3] == "empty":
        name, which = parts[1], parts[2]
        if which == "queued":
            ids = Queue(name, connection=connection).get_job_ids()
        else:
            registry_class = {
                "failed": rq_registries.FailedJobRegistry,
                "deferred": rq_registries.DeferredJobRegistry,
                "started": rq_registries.StartedJobRegistry,
                "finished": rq_registries.FinishedJobRegistry,
                "canceled": rq_registries.CanceledJobRegistry,
                "scheduled": rq_registries.ScheduledJobRegistry,
            }.get(which)
            ids = registry_class(name, connection=connection).get_job_ids(cleanup=False) if registry_class else []
        mark_cancelled(ids, f"deleted by an operator (rq-dashboard emptied '{name}' {which})")


def create_app(redis_url: str, username: str, password: str) -> Flask:
    import rq_dashboard
    from rq_dashboard.web import config as service_config
    from rq_dashboard.web import setup_rq_connection

    if not (username and password):
        raise ValueError("rq-dashboard needs RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD")
    # rq-dashboard's templates use both url_for("static") and its blueprint's static files.
    app = Flask("egoejo-dashboard", static_folder=str(Path(rq_dashboard.__file__).parent / "static"))
    app.config["RQ_DASHBOARD_REDIS_URL"] = [redis_url]
    app.config["RQ_DASHBOARD_POLL_INTERVAL"] = 2500
    service_config.serializer = JSONSerializer  # the project's jobs are JSON, never pickle
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="")
    setup_rq_connection(app)
    _register_queues(app.redis_conn)  # type: ignore[attr-defined]  # set by rq-dashboard's setup_rq_connection
    expected_user, expected_password = username.encode(), password.encode()

    @app.before_request
    def guard() -> Response | None:
        auth = request.authorization
        if not (
            auth
            and auth.type == "basic"
            and compare_digest((auth.username or "").encode(), expected_user)
            and compare_digest((auth.password or "").encode(), expected_password)
        ):
            return Response("Login required.\n", 401, {"WWW-Authenticate": 'Basic realm="rq-dashboard"'})
        mutating = any(marker in request.path for marker in _STATE_CHANGING)
        if request.method in ("GET", "HEAD") and mutating:
            abort(405)  # rq-dashboard's /requeue/<queue> would otherwise requeue on a GET
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("Origin") or request.headers.get("Referer", "")
            if not origin.startswith(request.host_url.rstrip("/")):
                abort(403)  # a cross-site form or fetch: the browser's credentials are not consent
            _record_operator_deletes(request.path, app.redis_conn)  # type: ignore[attr-defined]
        return None

    @app.after_request
    def harden(response: Response) -> Response:
        if response.mimetype == "application/json":
            try:
                data = json.loads(response.get_data(as_text=True))
            except ValueError:
                data = None
            if data is not None:
                response.set_data(json.dumps(escape_strings(data)))
        elif response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = content_security_policy(response.get_data(as_text=True))
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response

    return app


def wsgi_app() -> Flask:
    """Entry point for gunicorn: settings from Django, credentials from the environment."""
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    django.setup()
    from django.conf import settings

    return create_app(
        settings.RQ_QUEUES_URL,
        os.environ.get("RQ_DASHBOARD_USERNAME", ""),
        os.environ.get("RQ_DASHBOARD_PASSWORD", ""),
    )
