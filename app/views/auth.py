from __future__ import annotations

from django.contrib.auth import authenticate, login, logout
from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import get_token
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from app.services.accounts import register_user

from .http import error, json_body


@require_GET
def csrf(request: HttpRequest) -> JsonResponse:
    """Sets the CSRF cookie; API clients echo it in the X-CSRFToken header of their POSTs."""
    return JsonResponse({"csrfToken": get_token(request)})


@require_POST
def register(request: HttpRequest) -> JsonResponse:
    body = json_body(request)
    if body is None:
        return error(400, _("Send a JSON object (Content-Type: application/json)."))
    try:
        registration = register_user(
            username=str(body.get("username", "")),
            email=str(body.get("email", "")),
            password=str(body.get("password", "")),
            first_name=str(body.get("first_name", "")),
            language=str(body.get("language", "")),
        )
    except ValidationError as exc:
        return error(400, _("Invalid registration."), fields=exc.message_dict)
    user = registration.user
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse(
        {"id": user.pk, "username": user.get_username(), "welcome_job_id": registration.welcome_job_id}, status=201
    )


@require_POST
def login_view(request: HttpRequest) -> JsonResponse:
    body = json_body(request) or {}
    user = authenticate(request, username=str(body.get("username", "")), password=str(body.get("password", "")))
    if user is None:
        return error(400, _("Invalid username or password."))
    login(request, user)
    return JsonResponse({"id": user.pk, "username": user.get_username()})


@require_POST
def logout_view(request: HttpRequest) -> JsonResponse:
    logout(request)
    return JsonResponse({})
