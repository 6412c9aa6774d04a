"""Test settings: the real settings module, fed a test environment."""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("EMAIL_URL", "locmem://")
# One job-signing key for the test process and every process a test starts (they inherit it).
os.environ.setdefault("JOB_SIGNING_KEY", "test-job-signing-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("EGOEJO_VAR_DIR", tempfile.mkdtemp(prefix="egoejo-test-var-"))
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("QUEUEING_JOB_MODULES", "tests.fixtures")
os.environ.setdefault("PUBLIC_BASE_URL", "https://egoejo.test")  # where account mail links point
os.environ.setdefault("DJANGO_SSL_REDIRECT", "0")  # the test client speaks http; the redirect: tests/security/test_deploy.py

from app.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; security of test users is moot
# The cache is not under test; keeping it in-process lets parallel test runs share one Redis.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

os.makedirs(STATIC_ROOT, exist_ok=True)  # noqa: F405  (WhiteNoise warns about a missing directory)
