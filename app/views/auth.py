from __future__ import annotations

import json

from django.contrib.auth import authenticate, login, logout
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.utils.translation import get_language, gettext_noop
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from app.services import accounts, throttling
from app.services.accounts import register_user

from .http import error, json_body

REGISTRATION_ACCEPTED = gettext_noop(
    "Registration received. Check your mailbox: the next step is in the mail we sent to this address."
)
RESET_ACCEPTED = gettext_noop(
    "Request received. If an account uses this address, a link to set a new password has been sent to it."
)
INVALID_CONFIRMATION = gettext_noop(
    "This link is invalid, has expired or was already used, or the password is not the one chosen at registration."
)
INVALID_RESET = gettext_noop("This link is invalid, has expired or was already used. Ask for a new one.")
# What logs the confirming client in: the one backend (throttling's), named for login().
BACKEND = "app.services.throttling.ThrottledModelBackend"


@require_GET
def csrf(request: HttpRequest) -> JsonResponse:
    """Sets the CSRF cookie; API clients echo it in the X-CSRFToken header of their POSTs."""
    return JsonResponse({"csrfToken": get_token(request)})


@require_POST
def register(request: HttpRequest) -> JsonResponse:
    """202 for every well-formed registration, whether an account was created or the address (or
    username) was taken — the mailbox learns which; the client, and so an enumerator, never does.
    No session is opened: the account is inactive until the mailed link is followed."""
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
    """One answer for an unknown name, a wrong password and an inactive (unconfirmed) account. Failed
    attempts slow the guesser down (ThrottledModelBackend): a client that must wait gets 429 with
    Retry-After, whatever the password."""
    body = json_body(request) or {}
    username = str(body.get("username", ""))[:150]
    user = authenticate(request, username=username, password=str(body.get("password", "")))
    throttled = getattr(request, "login_throttled", None)
    if throttled is not None:
        return throttling.throttled_response(throttled)
    if user is None:
        return error(400, _("Invalid username or password."))
    login(request, user)
    return JsonResponse({"id": user.pk, "username": user.get_username()})


@require_POST
def logout_view(request: HttpRequest) -> JsonResponse:
    logout(request)
    return JsonResponse({})


# --- the address proved: confirmation, password reset ------------------------------------------


def _failures_budget(request: HttpRequest) -> tuple[throttling.Budget, str]:
    """A wrong token or password counts against the client, like a failed login."""
    return throttling.budget("THROTTLE_LOGIN_FAILURES_PER_IP"), throttling.client_ip(request)


def _confirm(request: HttpRequest, token: str, password: str) -> JsonResponse | None:
    """None once the account is active and this client logged in to it; else the error answer."""
    try:
        throttling.check(_failures_budget(request))
    except throttling.Throttled as exc:
        return throttling.throttled_response(exc)
    user = accounts.confirm_account(token, password)
    if user is None:
        try:
            throttling.hit(_failures_budget(request))
        except throttling.Throttled:
            pass
        return error(400, _(INVALID_CONFIRMATION))
    login(request, user, backend=BACKEND)
    throttling.LoginAttempt(request, user.get_username()).succeeded()
    return None


def _reset(request: HttpRequest, token: str, password: str) -> JsonResponse | None:
    try:
        throttling.check(_failures_budget(request))
    except throttling.Throttled as exc:
        return throttling.throttled_response(exc)
    try:
        user = accounts.reset_password(token, password)
    except accounts.InvalidLink:
        try:
            throttling.hit(_failures_budget(request))
        except throttling.Throttled:
            pass
        return error(400, _(INVALID_RESET))
    except ValidationError as exc:
        return error(400, _("Choose another password."), fields=exc.message_dict)
    throttling.LoginAttempt(request, user.get_username()).forgive()  # the owner proved the address
    return None


@require_POST
def confirm(request: HttpRequest) -> JsonResponse:
    """{"token", "password"}: the token from the mailed link and the password chosen at registration.
    The account becomes active and this client is logged in (200, like a login)."""
    body = json_body(request)
    if body is None:
        return error(400, _("Send a JSON object (Content-Type: application/json)."))
    failed = _confirm(request, str(body.get("token", "")), str(body.get("password", "")))
    if failed is not None:
        return failed
    return JsonResponse({"id": request.user.pk, "username": request.user.get_username()})


@require_POST
def password_reset(request: HttpRequest) -> JsonResponse:
    """{"email"}: 202 with the same body whether or not an account uses the address."""
    body = json_body(request)
    if body is None:
        return error(400, _("Send a JSON object (Content-Type: application/json)."))
    email = str(body.get("email", ""))
    try:
        throttling.hit(
            (throttling.budget("THROTTLE_PASSWORD_RESETS_PER_IP"), throttling.client_ip(request)),
            (throttling.budget("THROTTLE_PASSWORD_RESETS_PER_ADDRESS"), email),
        )
    except throttling.Throttled as exc:
        return throttling.throttled_response(exc)
    try:
        accounts.request_password_reset(email)
    except ValidationError as exc:
        return error(400, _("Invalid request."), fields=exc.message_dict)
    return JsonResponse({"detail": _(RESET_ACCEPTED)}, status=202)


@require_POST
def password_reset_confirm(request: HttpRequest) -> JsonResponse:
    """{"token", "password"}: the token from the mailed link and the new password (Django's validators)."""
    body = json_body(request)
    if body is None:
        return error(400, _("Send a JSON object (Content-Type: application/json)."))
    failed = _reset(request, str(body.get("token", "")), str(body.get("password", "")))
    if failed is not None:
        return failed
    return JsonResponse({"detail": _("Your password is set. Log in with it.")})


# --- the pages the mailed links open: GET shows a form, only its POST changes anything -------------


def _page(request: HttpRequest, status: int = 200, **context: object) -> HttpResponse:
    response = render(request, "accounts/page.html", {"language": get_language(), **context}, status=status)
    response["Referrer-Policy"] = "no-referrer"  # the token is in the URL: never in a Referer
    return response


def _errors(failed: JsonResponse) -> list[str]:
    body = json.loads(failed.content)
    return [body["error"], *(message for messages in body.get("fields", {}).values() for message in messages)]


@never_cache
@require_http_methods(["GET", "POST"])
def confirm_page(request: HttpRequest, token: str) -> HttpResponse:
    page = {
        "title": _("Confirm your account"),
        "form": True,
        "label": _("The password you chose"),
        "autocomplete": "current-password",
        "submit": _("Confirm"),
    }
    if request.method == "POST":
        failed = _confirm(request, token, request.POST.get("password", ""))
        if failed is None:
            return _page(request, title=page["title"], message=_("Your account is confirmed and you are logged in."))
        return _page(request, failed.status_code, errors=_errors(failed), **page)
    return _page(request, message=_("Enter the password you chose at registration to activate your account."), **page)


@never_cache
@require_http_methods(["GET", "POST"])
def reset_page(request: HttpRequest, token: str) -> HttpResponse:
    page = {
        "title": _("Choose a new password"),
        "form": True,
        "label": _("New password"),
        "autocomplete": "new-password",
        "submit": _("Set the password"),
    }
    if request.method == "POST":
        failed = _reset(request, token, request.POST.get("password", ""))
        if failed is None:
            return _page(request, title=page["title"], message=_("Your password is set. Log in with it."))
        return _page(request, failed.status_code, errors=_errors(failed), **page)
    return _page(request, **page)
