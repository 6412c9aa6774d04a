"""Small helpers shared by the JSON views."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _


def json_body(request: HttpRequest) -> dict[str, Any] | None:
    if request.content_type != "application/json":
        return None
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def login_required_json(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
    """Like login_required, but an API answers 401 instead of redirecting to a login page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        if not request.user.is_authenticated:
            return error(401, _("Authentication required."))
        return view(request, *args, **kwargs)

    return wrapper


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the API answers in JSON, in the request's language; other pages keep Django's."""
    if request.path_info.startswith("/api/"):
        return error(
            403,
            _(
                "CSRF check failed: send the value of the csrftoken cookie in the X-CSRFToken header "
                "(GET /api/auth/csrf/ sets the cookie)."
            ),
        )
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason)
