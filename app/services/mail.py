"""Composing and sending the platform's mail."""

from __future__ import annotations

import html
import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.template.loader import render_to_string
from django.utils import translation

from app.jobs.errors import PermanentJobError

_TAG = re.compile(r"<[^>]+>")
_BLOCK_END = re.compile(r"</(p|div|h[1-6]|li|tr)>|<br\s*/?>", re.IGNORECASE)


def html_to_text(html_content: str) -> str:
    """A readable plain-text part for clients that don't show HTML."""
    text = _BLOCK_END.sub("\n", html_content)
    text = _TAG.sub("", text)
    text = html.unescape(text)
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def ensure_valid_address(address: str) -> str:
    try:
        validate_email(address)
    except ValidationError:
        raise PermanentJobError(f"invalid e-mail address {address!r}") from None
    return address


def build_message(to_email: str, subject: str, html_content: str, text_content: str | None = None) -> EmailMultiAlternatives:
    ensure_valid_address(to_email)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text_content if text_content is not None else html_to_text(html_content),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to_email],
        reply_to=[settings.EMAIL_REPLY_TO],
    )
    message.attach_alternative(html_content, "text/html")
    return message


def send_message(message: EmailMultiAlternatives) -> None:
    message.send(fail_silently=False)


def render_welcome(user_id: int) -> EmailMultiAlternatives | None:
    """The welcome mail for an active member, or None when there is nobody to welcome."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return None
    language = settings.LANGUAGE_CODE
    with translation.override(language):
        context = {"name": user.first_name or user.get_username(), "site_name": "EGOEJO"}
        subject = render_to_string("emails/welcome_subject.txt", context).strip()
        html_content = render_to_string("emails/welcome.html", context)
        text_content = render_to_string("emails/welcome.txt", context)
    return build_message(user.email, subject, html_content, text_content)
