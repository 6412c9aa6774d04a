"""rq-dashboard, hardened, as the operators' browser view of queues, workers and jobs.

rq-dashboard 0.9 alone: HTTP basic auth only from its CLI, job descriptions and tracebacks
rendered unescaped by its client-side templates (stored XSS: job arguments and error texts
carry user input), POST actions without CSRF protection and a state-changing GET
(`/requeue/<queue>`). This wrapper keeps rq-dashboard's pages and adds:

- credentials required (RQ_DASHBOARD_USERNAME / RQ_DASHBOARD_PASSWORD), compared in constant time;
- a Content-Security-Policy whose only allowed scripts are rq-dashboard's own files and the
  exact inline scripts this response carries (by SHA-256), so markup injected at run time can
  never execute (no inline event handlers, no injected <script>);
- every string in the JSON the pages render is HTML-escaped, keys as well as values, except
  the few fields rq-dashboard's own templates escape themselves (escaping them twice would show
  `&quot;` to the operator), so a payload always shows as text;
- state changes only by POST, and only from the dashboard's own origin or a configured one
  (scheme, host and port compared exactly; behind a TLS-terminating proxy the scheme comes
  from RQ_DASHBOARD_PROXY_SSL_HEADER, trusted only when configured);
- on the workers page, rendered on the server: the suspension, pools with their members'
  processed counts, each busy worker's job (id, function, since when) and each retrying job's
  next attempt n/N, next run and last error (work_in_sight.py), the latter on its job page too;
- a "Recurring" page: rq-scheduler keeps its schedules in its own sorted set, which
  rq-dashboard does not read, so the recurring jobs and their next run are listed there.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from secrets import compare_digest
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from flask import Flask, Response, abort, render_template, request, url_for
from rq.exceptions import NoSuchJobError
from rq_scheduler import Scheduler

from .serialization import JobSerializer

_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"text/template\")[^>]*>(.*?)</script>", re.S | re.I)
_STATE_CHANGING = ("/delete", "/requeue", "/empty", "/compact")


_REGISTRIES = ("queued", "scheduled", "deferred", "started", "finished", "failed", "canceled")
RQ_SCHEDULER_KEY = Scheduler.scheduled_jobs_key  # where rq-scheduler keeps its schedules


def escape_strings(value: Any) -> Any:
    """HTML-escape every string, dict keys included (a key can be user input: a bulk result by address)."""
    if isinstance(value, str):
        return html.escape(value, quote=True)
    if isinstance(value, list):
        return [escape_strings(item) for item in value]
    if isinstance(value, dict):
        return {escape_strings(key) if isinstance(key, str) else key: escape_strings(item) for key, item in value.items()}
    return value


def _self_escaped_fields(endpoint: str | None, data: Any) -> Iterable[tuple[dict[str, Any], tuple[str, ...]]]:
    """(dict, fields) pairs that rq-dashboard 0.9's templates escape themselves before inserting.

    jobs.html puts a job's description and exc_info through `$('<div/>').text(...).html()`;
    workers.html prints the current job's description with underscore's escaping `<%- %>`.
    Everything else is inserted raw (`<%= %>`), so it must arrive escaped.
    """
    if not isinstance(data, dict):
        return
    if endpoint == "rq_dashboard.list_jobs":
        for job in data.get("jobs") or []:
            yield job, ("description", "exc_info")
    elif endpoint == "rq_dashboard.list_workers":
        for worker in data.get("workers") or []:
            if isinstance(worker.get("current_job"), dict):
                yield worker["current_job"], ("description",)


def escape_json(data: Any, endpoint: str | None) -> Any:
    """The dashboard's JSON with every string escaped exactly once on its way to the page."""
    escaped = escape_strings(data)
    pairs = list(_self_escaped_fields(endpoint, data))
    for (raw, fields), (target, _) in zip(pairs, _self_escaped_fields(endpoint, escaped), strict=True):
        for field in fields:
            if field in raw:
                target[field] = raw[field]
    return escaped


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int


_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(value: str) -> Origin | None:
    """scheme://host[:port] of an Origin header, a Referer or a configured origin; None if unusable."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return Origin(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme])


def parse_proxy_ssl_header(value: str | None) -> tuple[str, str] | None:
    """'X-Forwarded-Proto: https' (or 'X-Forwarded-Proto=https') -> ('X-Forwarded-Proto', 'https')."""
    if not value:
        return None
    name, sep, expected = value.replace("=", ":", 1).partition(":")
    if not (sep and name.strip() and expected.strip()):
        raise ValueError(f"RQ_DASHBOARD_PROXY_SSL_HEADER must look like 'X-Forwarded-Proto: https', not {value!r}")
    return name.strip(), expected.strip()


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

    from . import catalog, rq_compat

    names = list(catalog.queues())
    if names:
        connection.sadd(rq_compat.ALL_QUEUES_KEY, *(rq_compat.queue_key(name) for name in names))


def _record_operator_deletes(path: str, connection: Any) -> None:
    """rq-dashboard deletes with rq's own classes: tell the outbox first, so a deleted job stays deleted."""
    from rq import Queue
    from rq import registry as rq_registries

    from .outbox_ends import mark_cancelled

    parts = path.strip("/").split("/")
    if len(parts) == 3 and parts[0] == "job" and parts[2] == "delete":
        mark_cancelled([parts[1]], "deleted by an operator (rq-dashboard)", strict=True)
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
        mark_cancelled(ids, f"deleted by an operator (rq-dashboard emptied '{name}' {which})", strict=True)


def recurring_jobs(connection: Any) -> list[dict[str, Any]]:
    """rq-scheduler's schedules with their next run (UTC), soonest first."""
    from rq.job import Job

    entries = connection.zrange(RQ_SCHEDULER_KEY, 0, -1, withscores=True)
    ids = [job_id.decode() for job_id, _ in entries]
    jobs = Job.fetch_many(ids, connection=connection, serializer=JobSerializer) if ids else []
    rows = []
    for (job_id, score), job in zip(entries, jobs, strict=True):
        meta = job.meta if job is not None else {}
        rows.append(
            {
                "id": job_id.decode(),
                "func": job.func_name if job is not None else "(job data missing)",
                "queue": job.origin if job is not None else "",
                "cron": meta.get("cron_string") or "",
                "interval": meta.get("interval"),
                "next_run": datetime.fromtimestamp(score, tz=UTC),
            }
        )
    return rows


def create_app(
    redis_url: str,
    username: str,
    password: str,
    *,
    trusted_origins: Iterable[str] = (),
    proxy_ssl_header: str | None = None,
) -> Flask:
    import rq
    import rq_dashboard
    from rq_dashboard.version import VERSION as RQ_DASHBOARD_VERSION
    from rq_dashboard.web import escape_format_instance_list, setup_rq_connection

    from . import rq_compat

    if not (username and password):
        raise ValueError("rq-dashboard needs RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD")
    trusted: set[Origin] = set()
    for configured in trusted_origins:
        origin = parse_origin(configured)
        if origin is None:
            raise ValueError(f"RQ_DASHBOARD_TRUSTED_ORIGINS: {configured!r} is not scheme://host[:port]")
        trusted.add(origin)
    ssl_header = parse_proxy_ssl_header(proxy_ssl_header)
    # rq-dashboard's templates use both url_for("static") and its blueprint's static files;
    # this package's templates (the Recurring page, the navbar that links it) come first.
    app = Flask(
        "egoejo-dashboard",
        static_folder=str(Path(rq_dashboard.__file__).parent / "static"),
        template_folder=str(Path(__file__).parent / "dashboard_templates"),  # Jinja, for Flask; not a Django template dir
    )
    app.config["RQ_DASHBOARD_REDIS_URL"] = [redis_url]
    app.config["RQ_DASHBOARD_POLL_INTERVAL"] = 2500
    rq_compat.dashboard.use_serializer(JobSerializer)  # the project's jobs are JSON, never pickle
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="")
    setup_rq_connection(app)
    _register_queues(rq_compat.dashboard.redis_connection(app))
    expected_user, expected_password = username.encode(), password.encode()

    def own_origin() -> Origin | None:
        scheme = request.scheme
        if ssl_header is not None and request.headers.get(ssl_header[0], "").strip().lower() == ssl_header[1].lower():
            scheme = "https"  # the TLS-terminating proxy says so; only when configured to believe it
        return parse_origin(f"{scheme}://{request.host}")

    def allowed_origin() -> bool:
        presented = parse_origin(request.headers.get("Origin") or request.headers.get("Referer", ""))
        return presented is not None and (presented == own_origin() or presented in trusted)

    @app.route("/<int:instance_number>/view/recurring")
    def recurring(instance_number: int) -> Response:
        return Response(
            render_template(
                "egoejo/recurring.html",
                rows=recurring_jobs(rq_compat.dashboard.redis_connection(app)),
                now=datetime.now(UTC),
                current_instance=instance_number,
                instance_list=escape_format_instance_list(app.config["RQ_DASHBOARD_REDIS_URL"]),
                rq_url_prefix=url_for("rq_dashboard.queues_overview"),
                rq_dashboard_version=RQ_DASHBOARD_VERSION,
                rq_version=rq.__version__,
                active_tab="recurring",
                poll_interval=app.config["RQ_DASHBOARD_POLL_INTERVAL"],
            ),
            mimetype="text/html",
        )

    @app.context_processor
    def work_in_sight_context() -> dict[str, Any]:
        """The workers page's server-rendered part: suspension, pools, busy workers, retrying jobs."""
        if request.endpoint != "rq_dashboard.workers_overview":
            return {}
        from . import work_in_sight

        connection = rq_compat.dashboard.redis_connection(app)
        work = work_in_sight.workers(connection)
        return {"work": work, "pools": work.pool_rows(), "retrying": work_in_sight.retrying_jobs(connection)}

    @app.errorhandler(NoSuchJobError)
    def no_such_job(_: NoSuchJobError) -> Response:
        return Response("No such job.\n", 404, mimetype="text/plain")  # rq-dashboard alone answers 500

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
            if not allowed_origin():
                abort(403)  # a cross-site form or fetch: the browser's credentials are not consent
            _record_operator_deletes(request.path, rq_compat.dashboard.redis_connection(app))
        return None

    @app.after_request
    def harden(response: Response) -> Response:
        if response.mimetype == "application/json":
            try:
                data = json.loads(response.get_data(as_text=True))
            except ValueError:
                data = None
            if data is not None:
                if request.endpoint == "rq_dashboard.job_info" and isinstance(data, dict):
                    data["retry"] = _retry_state((request.view_args or {}).get("job_id", ""), rq_compat.dashboard.redis_connection(app))
                response.set_data(json.dumps(escape_json(data, request.endpoint)))
        elif response.mimetype == "text/html":
            if request.endpoint == "rq_dashboard.jobs_overview":
                _title_registry(response)
            response.headers["Content-Security-Policy"] = content_security_policy(response.get_data(as_text=True))
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response

    return app


def _retry_state(job_id: str, connection: Any) -> dict[str, Any] | None:
    """A retrying job's next attempt n/N, next run and last error for its page; None otherwise."""
    from . import work_in_sight
    from .jobclass import QueueingJob

    try:
        job = QueueingJob.fetch(job_id, connection=connection, serializer=JobSerializer)
    except NoSuchJobError:
        return None
    state = work_in_sight.retry_state(job, work_in_sight.next_run_of(job))
    return state.as_dict() if state is not None else None


def _title_registry(response: Response) -> None:
    """rq-dashboard titles every registry's list "the queued jobs"; say which registry it is."""
    registry = (request.view_args or {}).get("registry_name") or "queued"
    if registry in _REGISTRIES and registry != "queued":
        body = response.get_data(as_text=True)
        response.set_data(body.replace("all the queued jobs on queue", f"all the {registry} jobs on queue", 1))


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
        trusted_origins=settings.RQ_DASHBOARD_TRUSTED_ORIGINS,
        proxy_ssl_header=settings.RQ_DASHBOARD_PROXY_SSL_HEADER,
    )
