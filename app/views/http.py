"""Small helpers shared by the JSON views."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext as _
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

# A backend that cannot be reached for a moment (a restart, a failover, a terminated connection):
# the client may try again. Anything else is a fault of ours.
_UNAVAILABLE = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError, ReadOnlyError)  # ReadOnlyError: a replica during a failover
RETRY_AFTER_SECONDS = 5


# How deep a request's JSON may nest: no field of the API nests at all. (Python's parser itself
# turns some thousand levels into a RecursionError: tests/security/test_hostile_input.py.)
JSON_MAX_DEPTH = 32


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_body(request: HttpRequest) -> dict[str, Any] | None:
    """The request's JSON object, or None when it is not one that the API can take: not
    application/json, malformed, not an object, NaN/Infinity (not JSON, though Python's parser
    takes them), nested deeper than JSON_MAX_DEPTH, or holding a lone surrogate (no text encoding
    can store it). A NUL is left to each field's validation, which names the field. The body itself is bounded by DATA_UPLOAD_MAX_MEMORY_SIZE
    (Django raises RequestDataTooBig past it: a JSON 413, ApiErrorsAsJson)."""
    if request.content_type != "application/json":
        return None
    try:
        body = json.loads(request.body or b"{}", parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict) or not _acceptable(body):
        return None
    return body


def _acceptable(value: object) -> bool:
    """Nested at most JSON_MAX_DEPTH deep, and no lone surrogate (not encodable) in any string.
    Iterative: the work is bounded by the body's size."""
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return False
        elif isinstance(item, (dict, list)):
            if depth >= JSON_MAX_DEPTH:
                return False
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return True


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


class ApiErrorsAsJson:
    """Middleware: on /api/, every refusal is a JSON `{"error": ...}` in the request's language.

    Django and its decorators answer some refusals themselves, as HTML or an empty body: the
    resolver's 404 (a malformed id: `/api/images/-1/`), require_GET/require_POST's 405, a bad
    Host's or a malformed multipart body's 400, a body over DATA_UPLOAD_MAX_MEMORY_SIZE. Here
    such an answer is replaced by a JSON one of the same status (its Allow / Retry-After headers
    kept), and the request-size exceptions a view meets while reading the body become a JSON 413
    or 400 instead of a 500. Sits inside LocaleMiddleware, which sets its Content-Language.
    tests/security/test_hostile_input.py sweeps every route with hostile input through it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path_info.startswith("/api/") or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        replacement = error(response.status_code, _status_message(response))
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                replacement[header] = response[header]
        return replacement

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path_info.startswith("/api/"):
            return None
        if isinstance(exception, RequestDataTooBig):
            return error(413, _("The request body is too large."))
        if isinstance(exception, (TooManyFieldsSent, TooManyFilesSent)):
            return error(400, _("The request has too many fields or files."))
        if isinstance(exception, (SuspiciousOperation, BadRequest, MultiPartParserError)):
            return error(400, _("Malformed request."))
        return None


def _status_message(response: HttpResponse) -> str:
    status = response.status_code
    if status == 405:
        allowed = response.get("Allow", "")
        return _("Method not allowed; this address accepts: %(methods)s.") % {"methods": allowed}
    messages = {
        400: _("Malformed request."),
        401: _("Authentication required."),
        403: _("Forbidden."),
        404: _("No such resource."),
        413: _("The request body is too large."),
        429: _("Too many requests; try again later."),
    }
    return messages.get(status, _("Request refused."))
