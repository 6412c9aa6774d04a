"""Access control for django-rq's pages, which only check `is_staff` by themselves.

django-rq 4.2's `django_rq.admin` permission merely hides the admin menu link: any staff
member could open the queues and empty them. Here every request that resolves to a django-rq
view, under whatever URL it is mounted, GET or POST, needs a superuser or the permission; the
machine endpoints (stats.json, metrics) may instead present the API bearer token, which
django-rq itself checks. The check follows the view, not a URL prefix: a second mount (django-rq's
own admin registration mounts every view again under /admin/django_rq/) cannot bypass it.
tests/security/test_django_rq_routes.py enumerates every URL pattern that reaches a django-rq view.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from secrets import compare_digest

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden

PERMISSION = "django_rq.admin"


def may_operate_queues(user: object) -> bool:
    return bool(getattr(user, "is_active", False) and (getattr(user, "is_superuser", False) or user.has_perm(PERMISSION)))  # type: ignore[attr-defined]


def bearer_token(request: HttpRequest) -> str:
    """The token of an `Authorization: Bearer <token>` header, or ''."""
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""


def token_matches(expected: str, presented: str) -> bool:
    """Constant-time comparison; an unset token never matches."""
    # As bytes: compare_digest refuses non-ASCII text (a 500 for a hostile header).
    return bool(expected and presented and compare_digest(expected.encode(), presented.encode()))


def _has_valid_token(request: HttpRequest) -> bool:
    token = settings.RQ_API_TOKEN
    presented = bearer_token(request)
    if not presented:
        # django-rq also accepts the token as the last path segment of stats.json.
        presented = request.path_info.rstrip("/").rsplit("/", 1)[-1]
    return token_matches(token, presented)


def is_queue_view(view: Callable[..., object]) -> bool:
    """Whether a resolved view shows or changes the queues: django-rq's own, or the project's wrappers of them."""
    module = getattr(view, "__module__", "") or ""
    return module.split(".")[0] == "django_rq" or module in _QUEUE_VIEW_MODULES


_QUEUE_VIEW_MODULES = ("app.queueing.django_rq_pages", "app.queueing.admin")


def _is_token_endpoint(view: Callable[..., object]) -> bool:
    from django_rq import stats_views

    return inspect.unwrap(view) in (inspect.unwrap(stats_views.stats_json), inspect.unwrap(stats_views.prometheus_metrics))


class DjangoRQPermissionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Callable[..., object], args: object, kwargs: object) -> HttpResponse | None:
        if not is_queue_view(view) or may_operate_queues(request.user):
            return None
        if _is_token_endpoint(view) and _has_valid_token(request):
            return None
        if not request.user.is_authenticated and request.method == "GET" and "Authorization" not in request.headers:
            return redirect_to_login(request.get_full_path())
        return HttpResponseForbidden("You need the django_rq.admin permission to see or change the queues.")
