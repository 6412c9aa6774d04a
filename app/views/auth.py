from __future__ import annotations

from django.contrib.auth import authenticate, login, logout
from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import get_token
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET, require_POST

from app.services import throttling
from app.services.accounts import register_user

from .http import error, json_body

REGISTRATION_ACCEPTED = gettext_noop(
    "Registration received. Check your mailbox: the next step is in the mail we sent to this address."
)


@require_GET
def csrf(request: HttpRequest) -> JsonResponse:
    """Sets the CSRF cookie; API clients echo it in the X-CSRFToken header of their POSTs."""
    return JsonResponse({"csrfToken": get_token(request)})


@require_POST
def register(request: HttpRequest) -> JsonResponse:
    """202 for every well-formed registration, whether an account was created or the address (or
    username) was taken — the mailbox learns which; the client, and so an enumerator, never does.
    No session is opened: the member logs in (POST /api/auth/login/) like anyone else."""
    body = json_body(request)
    if body is None:
        return error(400, _("Send a JSON object (Content-Type: application/json)."))
    email = str(body.get("email", ""))
    try:
        throttling.hit(
            (throttling.budget("THROTTLE_REGISTRATIONS_PER_IP"), throttling.client_ip(request)),
            (throttling.budget("THROTTLE_REGISTRATIONS_PER_ADDRESS"), email),
        )
    except throttling.Throttled as exc:
        return throttling.throttled_response(exc)
    try:
        registration = register_user(
            username=str(body.get("username", "")),
            email=email,
            password=str(body.get("password", "")),
            first_name=str(body.get("first_name", "")),
            language=str(body.get("language", "")),
        )
    except ValidationError as exc:
        return error(400, _("Invalid registration."), fields=exc.message_dict)
    return JsonResponse({"detail": _(REGISTRATION_ACCEPTED), "job_id": registration.job_id}, status=202)


@require_POST
def login_view(request: HttpRequest) -> JsonResponse:
    """Failed attempts are counted per account and per client address (ThrottledModelBackend); past
    either budget the answer is 429 (with Retry-After) whatever the password, the right one included."""
    body = json_body(request) or {}
    username = str(body.get("username", ""))[:150]
    try:
        throttling.check(*throttling.login_charges(request, username))
    except throttling.Throttled as exc:
        return throttling.throttled_response(exc)
    user = authenticate(request, username=username, password=str(body.get("password", "")))
    if user is None:
        return error(400, _("Invalid username or password."))
    login(request, user)
    return JsonResponse({"id": user.pk, "username": user.get_username()})


@require_POST
def logout_view(request: HttpRequest) -> JsonResponse:
    logout(request)
    return JsonResponse({})
