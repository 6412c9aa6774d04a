"""Access control for django-rq's pages, which only check `is_staff` by themselves.

django-rq 4.2's `django_rq.admin` permission merely hides the admin menu link: any staff
member could open the queues and empty them. Here every django-rq URL, GET or POST, needs a
superuser or the permission; the machine endpoints (stats.json, metrics) may instead present
the API bearer token, which django-rq itself checks.
"""

from __future__ import annotations

from collections.abc import Callable
from secrets import compare_digest

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden

DJANGO_RQ_PREFIX = "/admin/django-rq/"
TOKEN_ENDPOINTS = ("stats.json", "metrics")
PERMISSION = "django_rq.admin"


def may_operate_queues(user: object) -> bool:
    return bool(getattr(user, "is_active", False) and (getattr(user, "is_superuser", False) or user.has_perm(PERMISSION)))  # type: ignore[attr-defined]


def bearer_token(request: HttpRequest) -> str:
    """The token of an `Authorization: Bearer <token>` header, or ''."""
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""


def token_matches(expected: str, presented: str) -> bool:
    """Constant-time comparison; an unset token never matches."""
    return bool(expected and presented and compare_digest(expected, presented))


def _has_valid_token(request: HttpRequest) -> bool:
    token = settings.RQ_API_TOKEN
    presented = bearer_token(request)
    if not presented:
        # django-rq also accepts the token as the last path segment of stats.json.
        presented = request.path_info.rstrip("/").rsplit("/", 1)[-1]
    return token_matches(token, presented)


class DjangoRQPermissionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # path_info, not path: mounted under a prefix (SCRIPT_NAME=/app) `path` is
        # /app/admin/django-rq/..., which the URL resolver still routes to django-rq.
        if request.path_info.startswith(DJANGO_RQ_PREFIX):
            if not may_operate_queues(request.user):
                relative = request.path_info[len(DJANGO_RQ_PREFIX):]
                if relative.startswith(TOKEN_ENDPOINTS) and _has_valid_token(request):
                    return self.get_response(request)
                if not request.user.is_authenticated and request.method == "GET" and "Authorization" not in request.headers:
                    return redirect_to_login(request.get_full_path())
                return HttpResponseForbidden("You need the django_rq.admin permission to see or change the queues.")
        return self.get_response(request)
