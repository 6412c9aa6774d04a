"""Settings read the environment in one place and refuse unsafe configurations at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from app.settings.mail import email_settings_from_url
from app.settings.redis_layout import build_layout

ROOT = Path(__file__).resolve().parents[1]


def test_redis_layout_derives_three_databases_from_one_url():
    layout = build_layout("redis://:secret@redis.internal:6380/9", channels_db=0, cache_db=1, queues_db=2)
    assert layout.channels_url == "redis://:secret@redis.internal:6380/0"
    assert layout.cache_url == "redis://:secret@redis.internal:6380/1"
    assert layout.queues_url == "redis://:secret@redis.internal:6380/2"


@pytest.mark.parametrize("queues_db", [0, 1])
def test_queues_may_not_share_a_database_with_cache_or_channels(queues_db: int):
    with pytest.raises(ImproperlyConfigured, match="must differ"):
        build_layout("redis://127.0.0.1:6379", channels_db=0, cache_db=1, queues_db=queues_db)


def test_email_url_parsing():
    smtp = email_settings_from_url("smtp+tls://user:p%40ss@smtp.example.org:2587", Path("/tmp"))
    assert smtp["EMAIL_HOST"] == "smtp.example.org" and smtp["EMAIL_PORT"] == 2587
    assert smtp["EMAIL_USE_TLS"] is True and smtp["EMAIL_HOST_PASSWORD"] == "p@ss"
    assert email_settings_from_url("file:///", Path("/srv/mail"))["EMAIL_FILE_PATH"] == "/srv/mail"
    with pytest.raises(ImproperlyConfigured):
        email_settings_from_url("pigeon://coop", Path("/tmp"))


def _check(env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "RQ_", "REDIS_", "EMAIL_"))}
    env.update(DJANGO_SETTINGS_MODULE="app.settings", **env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = _check({"EMAIL_URL": "console://"})
    assert result.returncode != 0
    assert "Set DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_to_start_when_queues_share_the_cache_db():
    result = _check({"DJANGO_SECRET_KEY": "x" * 50, "EMAIL_URL": "console://", "RQ_REDIS_DB": "1"})
    assert result.returncode != 0
    assert "must differ from the cache DB" in result.stderr


def test_development_starts_with_defaults():
    result = _check({"DJANGO_DEBUG": "1"})
    assert result.returncode == 0, result.stderr


def test_production_starts_with_strong_secrets():
    """The counterpart of tests/security's refusals of placeholder and short secrets."""
    strong = "Q1w2E3r4T5y6U7i8O9p0-a1S2d3F4g5H6j7K8l9"
    result = _check({
        "DJANGO_SECRET_KEY": strong, "EMAIL_URL": "console://", "METRICS_TOKEN": strong, "RQ_API_TOKEN": strong,
        "RQ_DASHBOARD_PASSWORD": strong, "REDIS_URL": f"redis://egoejo:{strong}@127.0.0.1:6379",
    })
    assert result.returncode == 0, result.stderr


def test_s3_media_needs_a_bucket_and_an_unknown_storage_is_refused():
    result = _check({"DJANGO_DEBUG": "1", "MEDIA_STORAGE": "s3", "AWS_STORAGE_BUCKET_NAME": ""})
    assert result.returncode != 0 and "AWS_STORAGE_BUCKET_NAME" in result.stderr
    result = _check({"DJANGO_DEBUG": "1", "MEDIA_STORAGE": "nfs"})
    assert result.returncode != 0 and "MEDIA_STORAGE must be 'local' or 's3'" in result.stderr


def test_with_sentinels_the_cache_follows_them_on_its_own_db():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "RQ_", "REDIS_", "EMAIL_"))}
    env.update(DJANGO_SETTINGS_MODULE="app.settings", DJANGO_DEBUG="1", REDIS_SENTINELS="s1:26379,s2:26379", REDIS_SENTINEL_MASTER="egoejo")
    code = "from django.conf import settings as s; c = s.CACHES['default']; print(c['BACKEND'], c['OPTIONS']['db'], c['OPTIONS']['master_name'], c['OPTIONS']['sentinels'])"
    result = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "app.sentinel_cache.SentinelRedisCache 1 egoejo [('s1', 26379), ('s2', 26379)]", result.stderr
