"""The project's settings, with the benchmark's views mounted beside the project's URLs."""

from app.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.lib.web.urls"
