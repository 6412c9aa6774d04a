"""gunicorn's configuration for the web container (`gunicorn -c deploy/gunicorn.conf.py app.wsgi`,
or under ASGI with `-k uvicorn_worker.UvicornWorker app.asgi:application`: docs/deploy.md).

gunicorn is meant to sit behind a reverse proxy (TLS, buffering of slow clients, request body
limits): docs/deploy.md. These limits are its own second line: a request line, header count or
header size past them is answered 400 by gunicorn before Django sees anything.
"""

import os

# A PaaS (Railway, Heroku-like) says which port to listen on in $PORT.
bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("GUNICORN_WORKERS", "3"))
worker_class = "sync"
accesslog = "-"

# Requests: one line, bounded headers (the defaults are 4094 / 100 / 8190).
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190

# A worker busy longer than this on one request is killed and replaced (uploads are bounded by
# IMAGE_UPLOAD_MAX_BYTES and processed in the background, so no request needs long).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5

# Recycle workers now and then (memory growth, fragmentation), not all at once.
max_requests = 2000
max_requests_jitter = 200

# The proxy in front sets X-Forwarded-Proto; only trust it from these addresses.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
