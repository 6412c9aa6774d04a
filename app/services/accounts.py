"""Registration: create the member, then (after commit) send the welcome mail."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext as _

from app.jobs.emails import send_welcome_email
from app.models import MemberPreferences


@dataclass(frozen=True)
class Registration:
    user: AbstractBaseUser
    welcome_job_id: str


def register_user(
    *, username: str, email: str, password: str, first_name: str = "", language: str = ""
) -> Registration:
    """Raises ValidationError (with per-field messages) on bad input; enqueues nothing then."""
    User = get_user_model()
    errors: dict[str, list[str]] = {}
    username = (username or "").strip()
    email = (email or "").strip()
    if not username or len(username) > 150:
        errors["username"] = [_("A username of 1 to 150 characters is required.")]
    else:
        try:
            User.username_validator(username)
        except ValidationError as exc:
            errors["username"] = list(exc.messages)
    if "username" not in errors and User.objects.filter(username__iexact=username).exists():
        errors["username"] = [_("This username is taken.")]
    try:
        validate_email(email)
    except ValidationError:
        errors["email"] = [_("Enter a valid e-mail address.")]
    else:
        if User.objects.filter(email__iexact=email).exists():
            errors["email"] = [_("An account with this e-mail address exists.")]
    languages = {code for code, _ in settings.LANGUAGES}
    if language and language not in languages:
        errors["language"] = [_("Choose one of: %(languages)s.") % {"languages": ", ".join(sorted(languages))}]
    candidate = User(username=username, email=email, first_name=first_name[:150])
    try:
        validate_password(password or "", user=candidate)
    except ValidationError as exc:
        errors["password"] = list(exc.messages)
    if errors:
        raise ValidationError(errors)

    with transaction.atomic():
        user = User.objects.create_user(username=username, email=email, password=password, first_name=first_name[:150])
        MemberPreferences.objects.create(user=user, language=language or settings.LANGUAGE_CODE)
        job_id = send_welcome_email.delay(user.pk).id
    return Registration(user=user, welcome_job_id=job_id)
