"""Small helpers shared by the JSON views."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

# A backend that cannot be reached for a moment (a restart, a failover, a terminated connection):
# the client may try again. Anything else is a fault of ours.
_UNAVAILABLE = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError, ReadOnlyError)  # ReadOnlyError: a replica during a failover
RETRY_AFTER_SECONDS = 5


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


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500. The API answers in JSON: 503 with Retry-After when the database or Redis could
    not be reached (a client may simply try again; a registration that did commit then answers
    that the address is taken), 500 for anything else. Other pages keep Django's."""
    if not request.path_info.startswith("/api/"):
        from django.views.defaults import server_error as django_server_error

        return django_server_error(request)
    if isinstance(sys.exc_info()[1], _UNAVAILABLE):
        response = error(503, _("The service is briefly unavailable; try again in a few seconds."))
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return error(500, _("Internal error; it has been reported."))
