"""Registration: create the member, then (after commit) send the welcome mail.

The answer never tells whether an address or a username is taken (that would let anyone
enumerate members): a registration that can't create an account is accepted all the same,
and the owner of the address is told by mail instead — the existing member that someone tried
to register with their address, a new address that the chosen username is taken. The same
password hashing is done either way, so timing tells no more than the answer.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from app.jobs.emails import send_account_exists_email, send_username_taken_email, send_welcome_email
from app.models import MemberPreferences

NAME_MAX_LENGTH = 150  # auth.User.first_name's column
# Control characters (CR/LF, NUL, escapes...) and line/paragraph separators: never part of a name,
# and the stuff of header injection and broken rows.
_FORBIDDEN_CATEGORIES = {"Cc", "Zl", "Zp"}


@dataclass(frozen=True)
class Registration:
    """What the caller may know: a job id either way (the welcome mail or the notice)."""

    job_id: str
    user: AbstractBaseUser | None  # None when nothing was created: never shown to the client


def check_name(value: str, field: str = "first_name", max_length: int = NAME_MAX_LENGTH) -> str:
    """A person's name as typed, bounded and free of control characters; ValidationError otherwise."""
    if len(value) > max_length:
        raise ValidationError({field: [_("At most %(count)d characters.") % {"count": max_length}]})
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in value):
        raise ValidationError({field: [_("Control characters and line breaks are not allowed.")]})
    return value.strip()


def register_user(
    *, username: str, email: str, password: str, first_name: str = "", language: str = ""
) -> Registration:
    """Raises ValidationError (with per-field messages) on malformed input; enqueues nothing then.

    Well-formed input always yields a Registration, whether or not an account was created.
    """
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
    try:
        if len(email) > 254:
            raise ValidationError("too long")
        validate_email(email)
    except ValidationError:
        errors["email"] = [_("Enter a valid e-mail address.")]
    try:
        first_name = check_name(first_name or "")
    except ValidationError as exc:
        errors.update(exc.message_dict)
    languages = {code for code, _ in settings.LANGUAGES}
    if language and language not in languages:
        errors["language"] = [_("Choose one of: %(languages)s.") % {"languages": ", ".join(sorted(languages))}]
    candidate = User(username=username, email=email, first_name=first_name)
    try:
        validate_password(password or "", user=candidate)
    except ValidationError as exc:
        errors["password"] = list(exc.messages)
    if errors:
        raise ValidationError(errors)

    language = language or settings.LANGUAGE_CODE
    owner = User.objects.filter(email__iexact=email).order_by("pk").first()
    if owner is not None:
        make_password(password)  # the work a new account costs: no timing tell
        return _notice_existing_owner(owner)
    try:
        with transaction.atomic():
            if User.objects.filter(username__iexact=username).exists():
                raise IntegrityError("username taken")
            user = User.objects.create_user(username=username, email=email, password=password, first_name=first_name)
            MemberPreferences.objects.create(user=user, language=language)
            job_id = send_welcome_email.delay(user.pk).id
    except IntegrityError:  # taken, or taken meanwhile by a concurrent registration
        make_password(password)
        with transaction.atomic():
            job_id = send_username_taken_email.delay(email, language).id
        return Registration(job_id=job_id, user=None)
    return Registration(job_id=job_id, user=user)


def _notice_existing_owner(owner: AbstractBaseUser) -> Registration:
    with transaction.atomic():
        job_id = send_account_exists_email.delay(owner.pk).id
    return Registration(job_id=job_id, user=None)
