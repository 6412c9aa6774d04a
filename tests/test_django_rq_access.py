"""Only superusers and holders of django_rq.admin reach django-rq's pages, for GET and POST."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from tests.factories import make_user

pytestmark = pytest.mark.django_db


# Every route, whatever its mount, for staff without the permission and the anonymous:
# tests/security/test_django_rq_routes.py.


def test_anonymous_is_sent_to_login_and_cannot_post(client):
    response = client.get("/admin/django-rq/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client.post("/admin/django-rq/queues/0/empty/").status_code == 403


def test_holder_of_the_permission_and_superuser_get_in(client):
    operator = make_user("operator", is_staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="admin", content_type__app_label="django_rq"))
    client.force_login(operator)
    assert client.get("/admin/django-rq/").status_code == 200
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    assert client.get("/admin/django-rq/").status_code == 200


def test_metrics_token_still_works_without_a_session(client, settings):
    settings.RQ_API_TOKEN = "s3cret-token"
    assert client.get("/admin/django-rq/metrics/").status_code in (302, 403)
    response = client.get("/admin/django-rq/metrics/", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200
    assert b"rq_jobs" in response.content or b"rq_workers" in response.content
    assert client.get("/admin/django-rq/metrics/", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403


def test_a_non_ascii_token_is_refused_not_a_500(client, settings):
    settings.RQ_API_TOKEN = "s3cret-token"
    assert client.get("/admin/django-rq/stats.json/", HTTP_AUTHORIZATION="Bearer jéton").status_code == 403
    assert client.get("/admin/django-rq/metrics/", HTTP_AUTHORIZATION="Bearer jéton").status_code == 403
