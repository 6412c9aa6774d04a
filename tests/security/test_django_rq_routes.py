"""Every route to a django-rq view, whatever its mount, is guarded and records its deletes.

django-rq registers its views twice when its admin link is on: under the project's
/admin/django-rq/ and again under /admin/django_rq/dashboard/, guarded there by is_staff alone
and with its own deletes (the job's outbox row stays pending and the reconciler sends it again).
These tests walk the whole URL tree, admin site included, rather than a list of known paths.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator

import django_rq
import pytest
from django.contrib.auth.models import Permission
from django.urls import URLPattern, URLResolver, get_resolver
from django_rq import views as django_rq_views

from app.queueing import django_rq_pages
from app.queueing.access import is_queue_view
from app.queueing.models import BackgroundJob
from tests.factories import make_user

pytestmark = pytest.mark.django_db

EMAILS_INDEX = [q["name"] for q in django_rq.settings.get_queues_list()].index("emails")
_CONVERTERS = {"int": str(EMAILS_INDEX), "str": "abc", "path": "a/b", "slug": "abc"}


def _walk(patterns: list[object], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def _sample(route: str) -> str:
    """A concrete path for a route: converters and regex groups given sample values."""
    path = re.sub(r"<(?:(\w+):)?\w+>", lambda m: _CONVERTERS.get(m.group(1) or "str", "abc"), route)
    path = re.sub(r"\(\?P<\w+>[^)]*\)\??", "", path)
    return "/" + path.replace("^", "").replace("$", "").replace("/?", "/").replace("\\", "")


def queue_routes() -> list[tuple[str, URLPattern]]:
    """Every URL pattern of the project whose view shows or changes the queues."""
    return [(route, pattern) for route, pattern in _walk(get_resolver().url_patterns) if _reaches_django_rq(pattern.callback)]


def _reaches_django_rq(view: object) -> bool:
    unwrapped = inspect.unwrap(view)  # type: ignore[arg-type]
    return any((getattr(v, "__module__", "") or "").startswith("django_rq") for v in (view, unwrapped)) or is_queue_view(view)  # type: ignore[arg-type]


def test_the_walk_finds_django_rqs_views():
    routes = [route for route, _ in queue_routes()]
    assert len(routes) > 20, routes
    assert any("queues/<int:queue_index>/empty/" in route for route in routes)


def test_every_route_to_a_django_rq_view_refuses_staff_without_the_permission(client, django_capture_on_commit_callbacks):
    client.force_login(make_user("staffer", is_staff=True))
    queue = django_rq.get_queue("emails")
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_call("app.jobs.emails.send_email", args=["a@example.org", "s", "<p>x</p>"])
    checked = 0
    for route, _ in queue_routes():
        path = _sample(route)
        assert client.get(path).status_code in (403, 404), path  # 404: a sample the route's converter rejects
        assert client.post(path, {"action": "empty", "job_ids": ["x"]}).status_code in (403, 404), path
        checked += client.get(path).status_code == 403
    assert checked > 20
    assert queue.count == 1  # nothing was emptied or deleted


def test_every_route_to_a_django_rq_view_sends_the_anonymous_to_log_in(client):
    for route, _ in queue_routes():
        path = _sample(route)
        response = client.get(path)
        assert response.status_code in (302, 404), path
        if response.status_code == 302:
            assert "/login/" in response["Location"], path


def test_no_route_deletes_with_django_rqs_own_views():
    """A route to one of django-rq's deleting views is the project's wrapper, which closes the outbox rows first."""
    deleting = {inspect.unwrap(view) for view in (django_rq_views.delete_job, django_rq_views.actions, django_rq_views.delete_failed_jobs)}
    wrappers = {django_rq_pages.delete_job, django_rq_pages.actions, django_rq_pages.delete_failed_jobs}
    seen = set()
    for route, pattern in queue_routes():
        callback = pattern.callback
        assert inspect.unwrap(callback) not in deleting or callback in wrappers, route
        if callback in wrappers:
            seen.add(callback)
    assert seen == wrappers


def test_django_rqs_second_mount_is_absent_and_the_admin_link_leads_to_the_guarded_pages(client):
    operator = make_user("operator", is_staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="admin", content_type__app_label="django_rq"))
    client.force_login(operator)
    index = client.get("/admin/").content.decode()
    assert "/admin/django_rq/dashboard/" in index  # the admin's own link to the queues
    link = client.get("/admin/django_rq/dashboard/")
    assert link.status_code == 302 and link["Location"] == "/admin/django-rq/"
    assert client.get(link["Location"]).status_code == 200
    # What django-rq's own admin registration mounted: gone, for everyone.
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    assert client.get(f"/admin/django_rq/dashboard/queues/{EMAILS_INDEX}/").status_code == 404
    # A staff member without the permission sees no link and cannot follow it.
    client.force_login(make_user("staffer", is_staff=True))
    assert "/admin/django_rq/dashboard/" not in client.get("/admin/").content.decode()
    assert client.get("/admin/django_rq/dashboard/").status_code == 403


def test_a_delete_on_any_route_closes_the_outbox_row_first(client, django_capture_on_commit_callbacks):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    queue = django_rq.get_queue("emails")
    with django_capture_on_commit_callbacks(execute=True):
        job = queue.enqueue_call("app.jobs.emails.send_email", args=["a@example.org", "s", "<p>x</p>"])
    deletes = [route for route, pattern in queue_routes() if pattern.callback is django_rq_pages.delete_job]
    assert deletes
    for route in deletes:
        path = route.replace("<int:queue_index>", str(EMAILS_INDEX)).replace("<str:job_id>", job.id)
        assert client.post("/" + path).status_code in (200, 302)
    assert BackgroundJob.objects.get(pk=job.id).state == BackgroundJob.State.CANCELLED
