"""The links that prove an address: account confirmation and password reset.

A link carries `<uid>.<token>`: the account's id (base64) and a token from Django's
PasswordResetTokenGenerator — an HMAC (SECRET_KEY, with SECRET_KEY_FALLBACKS during a rotation) of
the account's state and the time it was made. Nothing is stored: the token is checked by making it
again from the account's state now, so it dies when that state moves on, and after
ACCOUNT_TOKEN_MAX_AGE seconds (Django's PASSWORD_RESET_TIMEOUT). A job derives its link when it
runs, from the account's id: no token is ever written to Redis or the database.

- Confirmation: the state is the password hash, `is_active`, the pending registration's time and the
  address. Following the link activates the account and deletes the pending row: the token is dead
  (single use); a registration that replaces the pending one (new password, new time) kills the
  links mailed before it.
- Password reset: Django's own state (password hash, last login, address). Setting the password
  kills the token (single use); so does any login, or a change of address.
Each kind has its own salt: a confirmation token is never a reset token.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.utils.encoding import force_bytes
from django.utils.http import base36_to_int, urlsafe_base64_decode, urlsafe_base64_encode

from app.models import PendingAccount

MAX_TOKEN_LENGTH = 200  # ours are ~50 characters; anything longer is not worth a database query


class _Tokens(PasswordResetTokenGenerator):
    def check_token(self, user: Any, token: str | None) -> bool:
        """Django's check, its age bounded by ACCOUNT_TOKEN_MAX_AGE (Django's own bound,
        PASSWORD_RESET_TIMEOUT, is set to the same at start-up; this one follows a change at run time)."""
        if not token or not super().check_token(user, token):
            return False
        try:
            made = base36_to_int(token.split("-", 1)[0])
        except ValueError:
            return False
        return self._num_seconds(self._now()) - made <= settings.ACCOUNT_TOKEN_MAX_AGE


class ConfirmationTokens(_Tokens):
    key_salt = "app.services.account_tokens.ConfirmationTokens"

    def _make_hash_value(self, user: Any, timestamp: int) -> str:
        registered = PendingAccount.objects.filter(user_id=user.pk).values_list("registered_at", flat=True).first()
        registered_at = registered.isoformat() if registered else "confirmed"
        return f"{user.pk}{user.password}{user.is_active}{registered_at}{timestamp}{user.email}"


class ResetTokens(_Tokens):
    key_salt = "app.services.account_tokens.ResetTokens"


confirmation_tokens = ConfirmationTokens()
reset_tokens = ResetTokens()

CONFIRM_PATH = "/account/confirm/{token}/"
RESET_PATH = "/account/reset/{token}/"


def make(generator: PasswordResetTokenGenerator, user: Any) -> str:
    return f"{urlsafe_base64_encode(force_bytes(user.pk))}.{generator.make_token(user)}"


def parse(token: str) -> tuple[int, str] | None:
    """(account id, secret) of a well-formed token; None otherwise."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or "." not in token:
        return None
    uid, secret = token.split(".", 1)
    try:
        return int(urlsafe_base64_decode(uid).decode()), secret
    except (ValueError, UnicodeDecodeError):
        return None


def user_for(generator: PasswordResetTokenGenerator, token: str) -> Any | None:
    """The account whose valid token this is; None for anything else (malformed, unknown, expired, used)."""
    parsed = parse(token)
    if parsed is None:
        return None
    user = get_user_model().objects.filter(pk=parsed[0]).first()
    if user is None or not generator.check_token(user, parsed[1]):
        return None
    return user


def link(path: str, token: str) -> str:
    """An absolute link on the public site (PUBLIC_BASE_URL): never built from a request's Host."""
    base = settings.PUBLIC_BASE_URL
    if not base:
        from app.queueing import PermanentJobError

        raise PermanentJobError("PUBLIC_BASE_URL is not set: account mail cannot carry its link")
    return base + path.format(token=token)


def confirmation_link(user: Any) -> str:
    return link(CONFIRM_PATH, make(confirmation_tokens, user))


def reset_link(user: Any) -> str:
    return link(RESET_PATH, make(reset_tokens, user))


def valid_hours() -> int:
    return max(1, settings.ACCOUNT_TOKEN_MAX_AGE // 3600)
