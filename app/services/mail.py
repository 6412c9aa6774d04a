"""Composing and sending the platform's mail: templated, localised, sent once, over one connection.

Once only: every message has a Message-ID derived from its job and recipient; a `SentMail`
row is written right after the SMTP server's 250, and checked before sending, so a retry or a
re-run of the job never sends the same message again. The one window left is a crash between
the server's 250 and that row's commit: the message would then be sent again on the re-run
(its identical Message-ID lets receiving servers and clients de-duplicate it).
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import smtplib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import sanitize_address
from django.core.validators import validate_email
from django.template.loader import render_to_string
from django.utils import translation

from app.models import MemberPreferences, SentMail
from app.queueing import PermanentJobError

logger = logging.getLogger(__name__)

TEMPLATES = ("welcome", "announcement", "account_exists", "username_taken")
_TAG = re.compile(r"<[^>]+>")
_BLOCK_END = re.compile(r"</(p|div|h[1-6]|li|tr)>|<br\s*/?>", re.IGNORECASE)


def html_to_text(html_content: str) -> str:
    """A readable plain-text part for clients that don't show HTML."""
    text = _BLOCK_END.sub("\n", html_content)
    text = _TAG.sub("", text)
    text = html.unescape(text)
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def check_address(address: str) -> str:
    """For callers (views, services): a clear ValidationError, so nothing gets enqueued."""
    validate_email(address)
    return address


def ensure_valid_address(address: str) -> str:
    """For jobs: an invalid address is permanent, retrying can't help."""
    try:
        validate_email(address)
    except ValidationError:
        raise PermanentJobError(f"invalid e-mail address {address!r}") from None
    return address


def message_id_for(job_id: str, recipient: str) -> str:
    digest = hashlib.sha256(recipient.strip().lower().encode()).hexdigest()[:16]
    return f"<{job_id}.{digest}@{settings.EMAIL_MESSAGE_ID_DOMAIN}>"


def build_message(
    to_email: str, subject: str, html_content: str, text_content: str | None = None, message_id: str | None = None
) -> EmailMultiAlternatives:
    ensure_valid_address(to_email)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text_content if text_content is not None else html_to_text(html_content),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to_email],
        reply_to=[settings.EMAIL_REPLY_TO],
        headers={"Message-ID": message_id} if message_id else None,
    )
    message.attach_alternative(html_content, "text/html")
    return message


# --- one SMTP connection per worker process ------------------------------------------------

_connection: BaseEmailBackend | None = None
_connection_key: tuple[Any, ...] | None = None


def _settings_key() -> tuple[Any, ...]:
    return (
        settings.EMAIL_BACKEND,
        getattr(settings, "EMAIL_HOST", None),
        getattr(settings, "EMAIL_PORT", None),
        getattr(settings, "EMAIL_USE_TLS", None),
        getattr(settings, "EMAIL_USE_SSL", None),
        getattr(settings, "EMAIL_HOST_USER", None),
    )


def connection(verify: bool = True) -> BaseEmailBackend:
    """This process's mail connection, opened once and reused across jobs.

    A long-lived (non-forking) worker sends every mail over one SMTP session; a connection
    the server has dropped is noticed (NOOP, unless `verify` is off: within a batch the session
    was verified at its start, and a drop mid-batch surfaces as an error that reopens it) and
    reopened. A forking worker's job runs in a new process each time, so there it lasts one job.
    """
    global _connection, _connection_key
    key = _settings_key()
    if _connection is not None and _connection_key == key and (not verify or _alive(_connection)):
        return _connection
    close_connection()
    _connection = get_connection(fail_silently=False)
    _connection.open()
    _connection_key = key
    return _connection


def _alive(backend: BaseEmailBackend) -> bool:
    smtp = getattr(backend, "connection", None)
    if smtp is None:
        return not hasattr(backend, "connection")  # non-SMTP backends have nothing to keep alive
    try:
        return smtp.noop()[0] == 250
    except (smtplib.SMTPException, OSError):
        return False


def close_connection() -> None:
    global _connection, _connection_key
    if _connection is not None:
        try:
            _connection.close()
        except (smtplib.SMTPException, OSError):
            pass
    _connection, _connection_key = None, None


def send_once(message: EmailMultiAlternatives, job_id: str = "", verify_connection: bool = True, data: bytes | None = None) -> bool:
    """Send unless this Message-ID was sent before; False when it already was.

    `data`: the message's MIME bytes, built ahead (app.services.mail_bulk builds the next
    message while this one is on the wire); over SMTP they are sent as they are.
    """
    message_id = message.extra_headers.get("Message-ID")
    if message_id and SentMail.was_sent(message_id):
        logger.info("mail %s already sent: not sending again", message_id)
        return False
    try:
        _deliver(connection(verify=verify_connection), message, data)
    except smtplib.SMTPResponseException:
        raise  # the server answered (4xx/5xx): the session itself is fine, keep it
    except smtplib.SMTPRecipientsRefused:
        raise
    except OSError:  # includes SMTPServerDisconnected and socket errors
        close_connection()  # the next attempt starts a fresh session
        raise
    if message_id:
        SentMail.record(message_id, job_id, message.to[0], message.subject)  # an overlapping run's row wins
    return True


def mime_bytes(message: EmailMultiAlternatives) -> bytes:
    """What Django's SMTP backend would put on the wire for `message`."""
    return message.message().as_bytes(linesep="\r\n")


def _deliver(backend: BaseEmailBackend, message: EmailMultiAlternatives, data: bytes | None) -> None:
    smtp = getattr(backend, "connection", None)
    if data is None or not isinstance(smtp, smtplib.SMTP):
        backend.send_messages([message])
        return
    # Django's SMTP backend's _send(), with the bytes already built.
    encoding = message.encoding or settings.DEFAULT_CHARSET
    smtp.sendmail(
        sanitize_address(message.from_email, encoding),
        [sanitize_address(address, encoding) for address in message.recipients()],
        data,
    )


# --- templates and languages ----------------------------------------------------------------


def language_of(user_id: int) -> str:
    return languages_of([user_id])[user_id]


def languages_of(user_ids: list[int]) -> dict[int, str]:
    """Each member's mail language (one query for a whole batch); the site's default otherwise."""
    chosen = dict(MemberPreferences.objects.filter(user_id__in=user_ids).values_list("user_id", "language"))
    available = {code for code, _ in settings.LANGUAGES}
    return {user_id: chosen[user_id] if chosen.get(user_id) in available else settings.LANGUAGE_CODE for user_id in user_ids}


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def render(template: str, user: Any | None, language: str) -> Rendered:
    """Subjects are fixed text per template (tests/security checks that no template puts a variable
    other than site_name there): what a member typed never reaches a Subject header."""
    if template not in TEMPLATES:
        raise PermanentJobError(f"unknown mail template {template!r}")
    with translation.override(language):
        context = {"site_name": "EGOEJO"}
        if user is not None:
            context.update(name=user.first_name or user.get_username(), username=user.get_username())
        return Rendered(
            subject=render_to_string(f"emails/{language}/{template}_subject.txt", context).strip(),
            html=render_to_string(f"emails/{language}/{template}.html", context),
            text=render_to_string(f"emails/{language}/{template}.txt", context),
        )


def templated_message(template: str, user: Any, job_id: str, language: str | None = None) -> EmailMultiAlternatives:
    rendered = render(template, user, language or language_of(user.pk))
    return build_message(user.email, rendered.subject, rendered.html, rendered.text, message_id_for(job_id, user.email))


def address_message(template: str, to_email: str, job_id: str, language: str) -> EmailMultiAlternatives:
    """A templated mail to an address that is no member's (yet): no personal context at all."""
    available = {code for code, _ in settings.LANGUAGES}
    rendered = render(template, None, language if language in available else settings.LANGUAGE_CODE)
    return build_message(to_email, rendered.subject, rendered.html, rendered.text, message_id_for(job_id, to_email))


def active_user(user_id: int) -> Any | None:
    return get_user_model().objects.filter(pk=user_id, is_active=True).first()
