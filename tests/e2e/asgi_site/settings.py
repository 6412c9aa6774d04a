"""The project's settings with the test views mounted beside the project's URLs."""

from app.settings import *  # noqa: F403

ROOT_URLCONF = "tests.e2e.asgi_site.urls"
