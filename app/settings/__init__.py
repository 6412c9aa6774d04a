"""Django settings for the EGOEJO backend.

Every value that varies between deployments is read from the environment here and only
here (see .env.example); the rest of the code reads django.conf.settings.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from app.queueing.connections import DeclaredQueues

from .env import env_bool, env_decimal, env_int, env_list, env_optional, env_str
from .mail import email_settings_from_url
from .redis_layout import build_layout, parse_sentinels, sentinel_url, with_credentials
from .secrets import refuse_weak_secret
from .storage import storages_from_env

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("EGOEJO_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)

# Production refuses to start without a real secret; only DEBUG gets a throwaway one.
_secret = env_optional("DJANGO_SECRET_KEY")
if _secret is None:
    if not DEBUG:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for development).")
    _secret = "insecure-development-key-do-not-use-in-production"
SECRET_KEY = _secret
# Rotation: the previous key(s) here keep existing sessions and signed values valid meanwhile.
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS", [])

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# The JSON API answers a failed CSRF check in JSON, in the request's language.
CSRF_FAILURE_VIEW = "app.views.http.csrf_failure"

INSTALLED_APPS = [
    # The queueing layer before django_rq, so that its management commands (rqscheduler) win.
    "app.queueing",
    "app",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "django_tasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "app.security_headers.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "app.views.http.ApiErrorsAsJson",  # on /api/ every refusal is JSON: tests/security/test_hostile_input.py
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "app.queueing.access.DjangoRQPermissionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "app.urls"
LOGIN_URL = "admin:login"
WSGI_APPLICATION = "app.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Development's SQLite is shared by web, workers and scheduler: WAL lets readers and one
    # writer proceed together, and synchronous=NORMAL spares an fsync per commit.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        "transaction_mode": "IMMEDIATE",
    }
# Under ASGI (Daphne, uvicorn) every request runs in a thread of its own, so a persistent
# connection is never reused: each request would open one (~10 ms on PostgreSQL). The web's ASGI
# processes set DATABASE_POOL to a pool size (psycopg's pool, per process); everything else keeps
# persistent connections (a pool's threads must not meet a forking worker). docs/deploy.md#asgi.
DATABASE_POOL = env_int("DATABASE_POOL", 0)
if DATABASE_POOL and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them; Django refuses both at once
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": DATABASE_POOL, "timeout": 10}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ModelBackend with failed passwords counted per account and client (API and admin logins alike).
AUTHENTICATION_BACKENDS = ["app.services.throttling.ThrottledModelBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("en", "English")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT", str(VAR_DIR / "media")))
# Uploaded originals and their renditions: MEDIA_STORAGE=local (MEDIA_ROOT, the default) or s3
# (a private bucket; see app/settings/storage.py and docs/images.md).
STORAGES = storages_from_env()

# --- Redis: channels DB 0, cache DB 1, queues on their own DB (default 2) -------------
# Each process connects as its role's ACL user (deploy/redis/roles.acl): REDIS_USERNAME and
# REDIS_PASSWORD (egoejo-web, egoejo-worker, egoejo-scheduler, egoejo-dashboard) replace any
# credentials in REDIS_URL. Unset (development, tests' default): REDIS_URL as it is, no ACL needed.
REDIS_LAYOUT = build_layout(
    with_credentials(env_str("REDIS_URL", "redis://127.0.0.1:6379"), env_optional("REDIS_USERNAME"), env_optional("REDIS_PASSWORD")),
    channels_db=env_int("REDIS_CHANNELS_DB", 0),
    cache_db=env_int("REDIS_CACHE_DB", 1),
    queues_db=env_int("RQ_REDIS_DB", 2),
)
# Reserved for Django Channels' layer (channels_redis) so that it never meets the queues.
REDIS_CHANNELS_URL = REDIS_LAYOUT.channels_url

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_LAYOUT.cache_url,
        "KEY_PREFIX": "egoejo",
        "TIMEOUT": 300,
    }
}

# --- RQ ------------------------------------------------------------------------------
# Queues, timeouts and retry policy are declared with their jobs (app/jobs/<queue>.py); this only
# says where the queues are. RQ_QUEUES answers django-rq for every declared queue (and routes
# `default`, django-rq's `enqueue(f)`, to the job's declared queue): app/queueing/connections.py.
# JSON, not pickle, and only declared functions run: nothing read back from Redis runs code.
# With Redis Sentinel (REDIS_SENTINELS=host:port,... and REDIS_SENTINEL_MASTER), web, workers
# and scheduler ask the sentinels for the current master, and follow a failover.
_sentinels = env_optional("REDIS_SENTINELS")
if _sentinels:
    _master = env_str("REDIS_SENTINEL_MASTER", "mymaster")
    _queue_connection = {
        "SENTINELS": parse_sentinels(_sentinels),
        "MASTER_NAME": _master,
        "DB": REDIS_LAYOUT.queues_db,
        # The data nodes' ACL user and password (REDIS_URL carries them without Sentinel), and
        # the sentinels' own password when they require one (`requirepass` in sentinel.conf).
        "USERNAME": env_optional("REDIS_USERNAME"),
        "PASSWORD": env_optional("REDIS_PASSWORD"),
        "SENTINEL_KWARGS": {"password": env_optional("REDIS_SENTINEL_PASSWORD")} if env_optional("REDIS_SENTINEL_PASSWORD") else {},
        "SOCKET_TIMEOUT": 5,
        "CONNECTION_KWARGS": {"socket_connect_timeout": 2},
    }
    RQ_QUEUES_URL = sentinel_url(parse_sentinels(_sentinels), _master, REDIS_LAYOUT.queues_db)
    # The cache follows the same master, on its own DB (Django's RedisCache can't use Sentinel).
    CACHES["default"].update(
        BACKEND="app.sentinel_cache.SentinelRedisCache",
        LOCATION=sentinel_url(parse_sentinels(_sentinels), _master, REDIS_LAYOUT.cache_db),
        OPTIONS={
            "sentinels": parse_sentinels(_sentinels),
            "master_name": _master,
            "db": REDIS_LAYOUT.cache_db,
            "password": env_optional("REDIS_PASSWORD"),
            "socket_timeout": 5,
            "socket_connect_timeout": 2,
        },
    )
else:
    _queue_connection = {"URL": REDIS_LAYOUT.queues_url}
    RQ_QUEUES_URL = REDIS_LAYOUT.queues_url
RQ_QUEUES = DeclaredQueues({**_queue_connection, "SERIALIZER": "app.queueing.serialization.JobSerializer"})
# /metrics reads the queues' Redis as the read-only `egoejo-metrics` user when these are set
# (app/queueing/connections.py:metrics_connection); unset, or with Sentinel, as this process's user.
RQ_METRICS_REDIS_URL = (
    with_credentials(REDIS_LAYOUT.queues_url, env_optional("REDIS_METRICS_USERNAME"), env_optional("REDIS_METRICS_PASSWORD"))
    if env_optional("REDIS_METRICS_PASSWORD") and not _sentinels
    else None
)
RQ = {
    # Jobs are pushed after the transaction commits by the queueing layer itself (its outbox);
    # django-rq's own deferral would only add a second, non-durable one.
    "COMMIT_MODE": "auto",
    "QUEUE_CLASS": "app.queueing.enqueueing.DeclaredJobsQueue",
    "JOB_CLASS": "app.queueing.jobclass.QueueingJob",
    "WORKER_CLASS": "app.queueing.workers.ForkingWorker",
    "SCHEDULER_CLASS": "app.queueing.scheduling.ProjectScheduler",
}
RQ_EXCEPTION_HANDLERS = ["app.queueing.workers.classify_failure"]
# Django's standard task API (django_tasks; django.tasks on Django 6) runs on the queueing layer:
# `@task(queue_name=<a declared queue>)`, `.enqueue()` through the outbox (docs/tasks.md). Its
# queues are the declared ones (QUEUES, if set, may only narrow them).
TASKS = {"default": {"BACKEND": "app.queueing.tasks_backend.OutboxTaskBackend"}}
# RQ's own code paths everywhere instead of the verified fast ones (app/queueing/rq_compat/).
QUEUEING_FAST_PATHS = env_bool("RQ_FAST_PATHS", True)
# Tests only: committed jobs run at once in this process, through a worker's path (True, or the
# names of the queues to run so; a queue whose RQ_QUEUES entry says "ASYNC": False too):
# app/queueing/eager.py, README.md "Testing code that enqueues".
QUEUEING_EAGER: bool | frozenset[str] = False
# Modules declaring jobs outside an app's `jobs` module (the test suite's fixtures); empty in production.
QUEUEING_JOB_MODULES = env_list("QUEUEING_JOB_MODULES", [])
# A worker whose work loop has not moved for this long (plus a running in-process job's timeout)
# while its liveness thread beats leaves, with every thread's stack on stderr, to be restarted.
QUEUEING_WORK_LOOP_STALL_SECONDS = env_int("QUEUEING_WORK_LOOP_STALL_SECONDS", 90)
# Days the outbox keeps an ended job's row, its ledger with it (attempts, history, errors), before
# the scheduler's hourly purge deletes it (app/queueing/outbox.py purge_ended). At least 1.
QUEUEING_LEDGER_RETENTION_DAYS = env_int("QUEUEING_LEDGER_RETENTION_DAYS", 7)
if QUEUEING_LEDGER_RETENTION_DAYS < 1:
    raise ImproperlyConfigured(f"QUEUEING_LEDGER_RETENTION_DAYS must be at least 1, not {QUEUEING_LEDGER_RETENTION_DAYS}.")
# Called by forking workers once before their loop: work-horses inherit the media storage's client.
QUEUEING_BEFORE_WORK = ["app.media_storage.warm_up"]
# The keys that sign every job the queueing layer writes (app/queueing/signing.py): a worker runs
# only jobs whose signature verifies, so whoever can write to Redis cannot choose what runs. The
# first signs, all verify: rotate by putting a new JOB_SIGNING_KEY first and the old one in
# JOB_SIGNING_KEY_FALLBACKS until the jobs signed with it have run. Unset, a key is derived from
# DJANGO_SECRET_KEY (and its fallbacks), so it rotates with it. Redis never holds a key.
QUEUEING_SIGNING_KEYS = [
    *([_job_key] if (_job_key := env_optional("JOB_SIGNING_KEY")) else []),
    *env_list("JOB_SIGNING_KEY_FALLBACKS", []),
]
if not QUEUEING_SIGNING_KEYS:
    from hashlib import sha256 as _sha256
    from hmac import new as _hmac

    QUEUEING_SIGNING_KEYS = [
        _hmac(secret.encode(), b"egoejo.queueing.job-signing", _sha256).hexdigest() for secret in (SECRET_KEY, *SECRET_KEY_FALLBACKS)
    ]
# django-rq's own admin registration would mount every django-rq view a second time under
# /admin/django_rq/, guarded by is_staff alone: the admin's link to the queues is the project's
# (app/queueing/admin.py), to its one guarded mount, /admin/django-rq/.
RQ_SHOW_ADMIN_LINK = False
RQ_API_TOKEN = env_str("RQ_API_TOKEN", "")
# rq-dashboard accepts POSTs (empty, requeue, delete) only from its own origin or one of these,
# compared exactly (scheme://host[:port]); behind a TLS-terminating proxy, name the header the
# proxy sets ("X-Forwarded-Proto: https") so the dashboard knows browsers see https. Unset, no
# forwarded header is believed.
RQ_DASHBOARD_TRUSTED_ORIGINS = env_list("RQ_DASHBOARD_TRUSTED_ORIGINS", [])
RQ_DASHBOARD_PROXY_SSL_HEADER = env_optional("RQ_DASHBOARD_PROXY_SSL_HEADER")
# Bearer token for Prometheus at /metrics (a queue operator's session works too).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# Recurring refresh of every dashboard, in UTC cron syntax.
IMPACT_REFRESH_CRON = env_str("IMPACT_REFRESH_CRON", "*/15 * * * *")
IMPACT_STALE_AFTER_SECONDS = env_int("IMPACT_STALE_AFTER_SECONDS", 900)
# /healthz turns 503 when a queue's oldest job has waited longer than this.
HEALTH_MAX_QUEUE_AGE_SECONDS = env_int("HEALTH_MAX_QUEUE_AGE_SECONDS", 300)

# --- Throttling (app/services/throttling.py): moving windows counted in the cache DB -------
THROTTLE_REDIS_URL = with_credentials(env_str("THROTTLE_REDIS_URL", REDIS_LAYOUT.cache_url), env_optional("REDIS_USERNAME"), env_optional("REDIS_PASSWORD"))
# How many proxies of ours add to X-Forwarded-For (0: the client is REMOTE_ADDR, the header is ignored).
THROTTLE_TRUSTED_PROXIES = env_int("THROTTLE_TRUSTED_PROXIES", 0)
# Failed passwords: free per (account, client) pair, then each further attempt of the pair waits a delay
# doubling from 1 s up to THROTTLE_LOGIN_MAX_DELAY; free per account across clients, then clients that never
# logged in to it wait likewise (its owner's own clients do not); per client across accounts, then 429.
THROTTLE_LOGIN_FAILURES_PER_CLIENT_ACCOUNT = env_str("THROTTLE_LOGIN_FAILURES_PER_CLIENT_ACCOUNT", "5/15minutes")
THROTTLE_LOGIN_FAILURES_PER_ACCOUNT = env_str("THROTTLE_LOGIN_FAILURES_PER_ACCOUNT", "20/15minutes")
THROTTLE_LOGIN_FAILURES_PER_IP = env_str("THROTTLE_LOGIN_FAILURES_PER_IP", "20/15minutes")
THROTTLE_LOGIN_MAX_DELAY = env_int("THROTTLE_LOGIN_MAX_DELAY", 900)
THROTTLE_PASSWORD_RESETS_PER_IP = env_str("THROTTLE_PASSWORD_RESETS_PER_IP", "10/hour")
THROTTLE_PASSWORD_RESETS_PER_ADDRESS = env_str("THROTTLE_PASSWORD_RESETS_PER_ADDRESS", "3/hour")
THROTTLE_REGISTRATIONS_PER_IP = env_str("THROTTLE_REGISTRATIONS_PER_IP", "10/hour")
THROTTLE_REGISTRATIONS_PER_ADDRESS = env_str("THROTTLE_REGISTRATIONS_PER_ADDRESS", "3/hour")
THROTTLE_UPLOADS_PER_USER = env_str("THROTTLE_UPLOADS_PER_USER", "30/hour")
THROTTLE_CONTRIBUTIONS_PER_USER = env_str("THROTTLE_CONTRIBUTIONS_PER_USER", "20/hour")

# --- Contributions (app/services/contributions.py): amounts in euros, cents at most -------
CONTRIBUTION_MIN_AMOUNT = env_decimal("CONTRIBUTION_MIN_AMOUNT", "1.00")
CONTRIBUTION_MAX_AMOUNT = env_decimal("CONTRIBUTION_MAX_AMOUNT", "10000.00")
if not Decimal("0.01") <= CONTRIBUTION_MIN_AMOUNT <= CONTRIBUTION_MAX_AMOUNT < Decimal("10000000000"):
    raise ImproperlyConfigured("Contribution bounds: 0.01 <= CONTRIBUTION_MIN_AMOUNT <= CONTRIBUTION_MAX_AMOUNT < 10^10 (the column's range).")

# --- Accounts (app/services/accounts.py): an account proves its address by a mailed link -------
# The public site the links in account mail point to (scheme://host[:port]), never a request's Host
# header. Unset in production, account mail fails (permanently, with this reason) rather than guess.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000" if DEBUG else "").rstrip("/")
if PUBLIC_BASE_URL and urlsplit(PUBLIC_BASE_URL).scheme not in ("http", "https"):
    raise ImproperlyConfigured(f"PUBLIC_BASE_URL must start with https:// (or http://), not {PUBLIC_BASE_URL!r}.")
# Seconds a confirmation or password-reset link stays valid; also how long an unconfirmed
# registration holds its username. Django's token generator reads PASSWORD_RESET_TIMEOUT.
ACCOUNT_TOKEN_MAX_AGE = env_int("ACCOUNT_TOKEN_MAX_AGE", 86_400)
PASSWORD_RESET_TIMEOUT = ACCOUNT_TOKEN_MAX_AGE

# --- Uploads ---------------------------------------------------------------------------
IMAGE_UPLOAD_MAX_BYTES = env_int("IMAGE_UPLOAD_MAX_BYTES", 20 * 1024 * 1024)
IMAGE_MAX_PIXELS = env_int("IMAGE_MAX_PIXELS", 50_000_000)
# What the web process's header check (app/services/images/headers.py) also refuses: animations
# of more frames, files with more metadata (EXIF, ICC, XMP, text, counted inflated).
IMAGE_MAX_FRAMES = env_int("IMAGE_MAX_FRAMES", 1000)
IMAGE_MAX_METADATA_BYTES = env_int("IMAGE_MAX_METADATA_BYTES", 4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_PERMISSIONS = 0o640

# --- Mail ------------------------------------------------------------------------------
_email_url = env_optional("EMAIL_URL") or ("file:///" if DEBUG else None)
if _email_url is None:
    raise ImproperlyConfigured("Set EMAIL_URL (e.g. smtp+tls://user:password@smtp.example.org:587).")
globals().update(email_settings_from_url(_email_url, default_file_dir=VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "EGOEJO <no-reply@egoejo.org>")
EMAIL_REPLY_TO = env_str("EMAIL_REPLY_TO", "contact@egoejo.org")
EMAIL_MESSAGE_ID_DOMAIN = env_str("EMAIL_MESSAGE_ID_DOMAIN", "egoejo.org")

# --- Security --------------------------------------------------------------------------
SESSION_COOKIE_SECURE = not DEBUG and env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Served over https (the secure-cookie switch): http is redirected and browsers are told to
# stick to https (HSTS, a year by default). The container's and Prometheus' own probes stay on http.
# Behind a TLS proxy, request.is_secure() needs the proxy trusted (GUNICORN_FORWARDED_ALLOW_IPS,
# docs/deploy.md), or every request is redirected again. `manage.py check --deploy` is clean
# (tests/security/test_deploy.py).
SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE and env_bool("DJANGO_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^livez$", r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600) if SESSION_COOKIE_SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# app/security_headers.py: the site's own scripts only, no plugins, no framing, forms to itself.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
# HSTS preload is a commitment of the whole domain to hstspreload.org's list: the operator's
# decision (DJANGO_HSTS_PRELOAD=1), not a default, so its reminder is silenced until then.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# Production refuses placeholder and short secrets (the example files' `change-me` included).
if not DEBUG:
    refuse_weak_secret("DJANGO_SECRET_KEY", SECRET_KEY, 32)
    refuse_weak_secret("METRICS_TOKEN", METRICS_TOKEN, 24)
    refuse_weak_secret("RQ_API_TOKEN", RQ_API_TOKEN, 24)
    refuse_weak_secret("JOB_SIGNING_KEY", env_optional("JOB_SIGNING_KEY"), 32)
    # Read by `manage.py rqdashboard` (app/dashboard); checked here so that every process refuses it.
    refuse_weak_secret("RQ_DASHBOARD_PASSWORD", env_optional("RQ_DASHBOARD_PASSWORD"), 16)
    refuse_weak_secret("the password in REDIS_URL", urlsplit(env_str("REDIS_URL", "redis://127.0.0.1:6379")).password, 16)
    refuse_weak_secret("REDIS_PASSWORD", env_optional("REDIS_PASSWORD"), 16)
    refuse_weak_secret("REDIS_METRICS_PASSWORD", env_optional("REDIS_METRICS_PASSWORD"), 16)

# --- Error tracking (app/observability.py): on only with a DSN --------------------------
SENTRY_DSN = env_optional("SENTRY_DSN")
if SENTRY_DSN:
    from app.observability import init_error_tracking

    init_error_tracking(
        SENTRY_DSN, environment=env_str("SENTRY_ENVIRONMENT", "production"), release=env_optional("SENTRY_RELEASE")
    )

# --- Tracing (app/tracing.py): on only when an OpenTelemetry exporter is configured -----------
# The standard OTEL_* variables; the SDK reads the rest of them itself (service name, headers, batching).
from app.tracing import exporter_from  # noqa: E402  (imports nothing of Django's or OpenTelemetry's)

TRACING_EXPORTER = exporter_from({
    name: env_optional(name) or ""
    for name in ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
})
TRACING_SAMPLE_RATIO = (
    float(env_optional("OTEL_TRACES_SAMPLER_ARG") or "1.0") if (env_optional("OTEL_TRACES_SAMPLER") or "").endswith("traceidratio") else 1.0
)

# --- Logging ---------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FORMAT = env_str("LOG_FORMAT", "text")  # "text" or "json"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "app.logging.JsonFormatter"},
    },
    # RQ's idle housekeeping ("cleaning registries", lock renewals) at DEBUG: app/logging.py.
    "filters": {"rq_housekeeping": {"()": "app.logging.RQHousekeepingAtDebug"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "rq.worker": {"level": LOG_LEVEL, "filters": ["rq_housekeeping"]},
        "rq.scheduler": {"filters": ["rq_housekeeping"]},
        "django.db.backends": {"level": "INFO"},
    },
}
_TRACED_LOGGING: dict[str, Any] = {
    "formatters": {
        "text": {"()": "app.tracing.TextWithTraceFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "app.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["trace_context"]}},
    "filters": {"rq_housekeeping": {"()": "app.logging.RQHousekeepingAtDebug"}, "trace_context": {"()": "app.tracing.TraceContextFilter"}},
}
if TRACING_EXPORTER:
    # Each line logged inside a span (a job's run, a request) carries its trace id: joinable with the trace.
    LOGGING.update(_TRACED_LOGGING)
