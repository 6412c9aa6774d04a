"""Accounts: registration, the proof of the address, password reset.

An account proves its address before it can log in: registration creates it inactive, with a
PendingAccount row, and mails a confirmation link (app/services/account_tokens.py); following the
link with the password chosen activates it (and sends the welcome mail). Asking for the link's
password as well means that only the person who chose it — not whoever re-registered the
address since — can turn the pending account into a live one.

No answer tells whether an address or a username is taken (that would let anyone enumerate
members): every well-formed registration is accepted the same way, and the address's owner is
told by mail instead — an active member that someone tried to register with their address (with a
link to set a new password), a new address that the chosen username is taken. One password hash
is computed on every path, so timing tells no more than the answer.

An unconfirmed registration never blocks the address's owner: registering again with an address
whose account is still unconfirmed replaces that registration (username, password, name,
language; its earlier links die) and mails a new link. A username held by an unconfirmed account
is taken until ACCOUNT_TOKEN_MAX_AGE has passed since that registration; then a registration that
asks for it deletes the stale account and takes it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from app.jobs.emails import (
    send_account_exists_email,
    send_confirmation_email,
    send_password_reset_email,
    send_username_taken_email,
    send_welcome_email,
)
from app.models import MemberPreferences, PendingAccount
from app.services import account_tokens

NAME_MAX_LENGTH = 150  # auth.User.first_name's column
# Control characters (CR/LF, NUL, escapes...) and line/paragraph separators: never part of a name,
# and the stuff of header injection and broken rows.
_FORBIDDEN_CATEGORIES = {"Cc", "Zl", "Zp"}


@dataclass(frozen=True)
class Registration:
    """What the caller may know: a job id either way (the confirmation mail or the notice)."""

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
    try:
        with transaction.atomic():
            return _register(username, email, password, first_name, language)
    except IntegrityError:  # the username taken meanwhile by a concurrent registration
        make_password(password)
        with transaction.atomic():
            job_id = send_username_taken_email.delay(email, language).id
        return Registration(job_id=job_id, user=None)


def _register(username: str, email: str, password: str, first_name: str, language: str) -> Registration:
    User = get_user_model()
    now = timezone.now()
    owner = User.objects.select_for_update().filter(email__iexact=email).order_by("pk").first()
    if owner is not None and not PendingAccount.objects.filter(user=owner).exists():
        make_password(password)  # the work a new account costs: no timing tell
        return Registration(job_id=send_account_exists_email.delay(owner.pk).id, user=None)
    holder = User.objects.filter(username__iexact=username).exclude(pk=owner.pk if owner else None).first()
    if holder is not None:
        if not _stale(holder, now):
            make_password(password)
            return Registration(job_id=send_username_taken_email.delay(email, language).id, user=None)
        holder.delete()  # an unconfirmed registration past its links' validity: the name is free again
    if owner is not None:  # an unconfirmed registration of this address: this one replaces it
        owner.username, owner.email, owner.first_name = username, email, first_name
        owner.set_password(password)
        owner.save(update_fields=["username", "email", "first_name", "password"])
        PendingAccount.objects.filter(user=owner).update(registered_at=now)  # earlier links die
        MemberPreferences.objects.update_or_create(user=owner, defaults={"language": language})
        user = owner
    else:
        user = User.objects.create_user(
            username=username, email=email, password=password, first_name=first_name, is_active=False
        )
        PendingAccount.objects.create(user=user, registered_at=now)
        MemberPreferences.objects.create(user=user, language=language)
    return Registration(job_id=send_confirmation_email.delay(user.pk).id, user=user)


def _stale(user: Any, now: Any) -> bool:
    """An unconfirmed account whose registration is older than its links can be."""
    cutoff = now - timedelta(seconds=settings.ACCOUNT_TOKEN_MAX_AGE)
    return PendingAccount.objects.filter(user=user, registered_at__lt=cutoff).exists()


def confirm_account(token: str, password: str) -> Any | None:
    """Activate the account of a valid confirmation token, given the password chosen at registration;
    None otherwise (malformed, unknown, expired or used token, wrong password), whatever the reason.
    The welcome mail is enqueued with the activation."""
    parsed = account_tokens.parse(token)
    with transaction.atomic():
        # The pending row is the token's life: locked here and deleted on success, so two posts of
        # one link (or a registration replacing this one meanwhile) activate at most once.
        pending = (
            PendingAccount.objects.select_for_update().select_related("user").filter(user_id=parsed[0]).first()
            if parsed
            else None
        )
        user = pending.user if pending else None
        if user is None or user.is_active or not account_tokens.confirmation_tokens.check_token(user, parsed[1]):  # type: ignore[index]
            make_password(password or "")  # the work a valid link costs
            return None
        if not user.check_password(password or ""):
            return None
        pending.delete()  # type: ignore[union-attr]
        user.is_active = True
        user.save(update_fields=["is_active"])
        send_welcome_email.delay(user.pk)
    return user


def request_password_reset(email: str) -> None:
    """Raises ValidationError for a malformed address. Otherwise enqueues the reset mail, which goes out
    only if an active account uses the address (the job looks when it runs): the caller, and whoever
    asks, learns nothing — same answer, same work."""
    email = (email or "").strip()
    try:
        if len(email) > 254:
            raise ValidationError("too long")
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": [_("Enter a valid e-mail address.")]}) from None
    with transaction.atomic():
        send_password_reset_email.delay(email)


class InvalidLink(Exception):
    """A reset token that is malformed, unknown, expired or already used."""


def reset_password(token: str, password: str) -> Any:
    """Set the password of a valid reset token's account; the token dies with the old password (and
    every session with it: Django's session hash is derived from the password).

    Raises InvalidLink, or ValidationError({"password": [...]}) from Django's password validators."""
    user = account_tokens.user_for(account_tokens.reset_tokens, token)
    if user is None or not user.is_active:
        raise InvalidLink
    try:
        validate_password(password or "", user=user)
    except ValidationError as exc:
        raise ValidationError({"password": list(exc.messages)}) from None
    user.set_password(password)
    user.save(update_fields=["password"])
    return user
