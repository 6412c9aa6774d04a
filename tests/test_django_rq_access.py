"""Only superusers and holders of django_rq.admin reach django-rq's pages, for GET and POST."""

from __future__ import annotations

import django_rq
import pytest
from django.contrib.auth.models import Permission
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import make_user

pytestmark = pytest.mark.django_db


EMAILS_INDEX = [q["name"] for q in django_rq.settings.get_queues_list()].index("emails")


def django_rq_paths() -> list[str]:
    """Every django-rq URL, with sample arguments filled in."""
    resolver = get_resolver()
    paths: list[str] = []
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver) and str(pattern.pattern) == "admin/django-rq/":
            for sub in pattern.url_patterns:
                assert isinstance(sub, URLPattern)
                route = str(sub.pattern).lstrip("^").rstrip("$").replace("/?", "/")
                for placeholder, value in {
                    "<int:queue_index>": str(EMAILS_INDEX), "<str:job_id>": "abc", "<str:key>": "k", "<str:result_id>": "1-0",
                    "<str:scheduler_name>": "s", "(?P<token>[\\w]+)?/": "", "<str:name>": "n",
                }.items():
                    route = route.replace(placeholder, value)
                paths.append("/admin/django-rq/" + route)
    assert len(paths) > 15
    return sorted(set(paths))


@pytest.fixture
def staff_without_permission(client):
    user = make_user("staffer", is_staff=True)
    client.force_login(user)
    return user


def test_staff_without_the_permission_gets_403_everywhere(client, staff_without_permission, django_capture_on_commit_callbacks):
    queue = django_rq.get_queue("emails")
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_call("app.jobs.emails.send_email", args=["a@example.org", "s", "<p>x</p>"])
    for path in django_rq_paths():
        assert client.get(path).status_code == 403, path
        assert client.post(path, {"action": "empty"}).status_code == 403, path
    assert queue.count == 1  # nothing was emptied


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
