"""The production settings, with URLs that add the async test views (tests/e2e/asgi_views.py)."""

from app.settings import *  # noqa: F403

ROOT_URLCONF = "tests.e2e.asgi_views"
