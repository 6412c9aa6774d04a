"""Composing and sending the platform's mail: templated, localised, sent once, over one connection.

Once: every message has a Message-ID derived from its job and recipient. A `SentMail` row is
written (`attempting`) before the message goes out and marked `sent` after the server's 250; a
retry or re-run that finds a `sent` row sends nothing. A failure to record the 250 is not
an error of the job (the mail went out: retrying would send it again); the row then stays
`attempting`.

The uncertain window — the sender dies between handing over DATA and recording the answer —
no protocol closes. What a later run does with an `attempting` row is the kind's policy
(`Delivery`, docs/mail.md): transactional mail (welcome, single sends) is at-least-once, sent
again under the same Message-ID so that receivers can recognise the duplicate; a fan-out to
many members is at-most-once, the attempt counted as sent.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import smtplib
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import sanitize_address
from django.core.validators import validate_email
from django.db import DatabaseError, close_old_connections
from django.db import connection as db_connection
from django.template.loader import render_to_string
from django.utils import translation

from app import tracing
from app.models import MemberPreferences, SentMail
from app.queueing import PermanentJobError

logger = logging.getLogger(__name__)

TEMPLATES = ("welcome", "announcement", "account_exists", "username_taken", "confirm_address", "password_reset")
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


class Delivery(Enum):
    """What a run does with a mail whose earlier attempt's outcome is unknown (an `attempting` row)."""

    AT_LEAST_ONCE = "at-least-once"  # send again, same Message-ID: a duplicate, recognisable, over a loss
    AT_MOST_ONCE = "at-most-once"  # count it as sent: a possible loss over a duplicate to many people


# Waits before each new try at recording the server's 250 (a database blip must not cost a duplicate).
RECORD_RETRY_DELAYS = (0.1, 0.5, 1.5)


@dataclass
class _Progress:
    data_started: bool = False  # DATA was sent: from here a failure leaves the outcome unknown


def send_once(
    message: EmailMultiAlternatives,
    job_id: str = "",
    verify_connection: bool = True,
    data: bytes | None = None,
    delivery: Delivery = Delivery.AT_LEAST_ONCE,
) -> bool:
    """Send unless this Message-ID was sent before; False when it already was (or, at-most-once, may have been).

    `data`: the message's MIME bytes, built ahead (app.services.mail.batch_sending builds the next
    message while this one is on the wire); over SMTP they are sent as they are.
    """
    message_id = message.extra_headers.get("Message-ID")
    prior: str | None = None
    if message_id:
        prior = SentMail.claim(message_id, job_id, message.to[0], message.subject)
        if prior == SentMail.State.SENT:
            logger.info("mail %s already sent: not sending again", message_id)
            return False
        if prior == SentMail.State.ATTEMPTING:
            if delivery is Delivery.AT_MOST_ONCE:
                logger.warning("mail %s: an earlier attempt's outcome is unknown; at-most-once, not sending again", message_id)
                return False
            logger.warning("mail %s: an earlier attempt's outcome is unknown; at-least-once, sending again", message_id)
            SentMail.attempt_again(message_id)
    progress = _Progress()
    try:
        with tracing.span("smtp send"):  # the SMTP conversation, in the job's trace when tracing is on
            _deliver(connection(verify=verify_connection), message, data, progress)
    except BaseException as exc:
        definite = not progress.data_started or isinstance(exc, (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused))
        if message_id and definite and prior is None:
            # Refused, or never reached DATA: this attempt sent nothing, and its row goes, so a
            # retry may send. A row an earlier attempt left `attempting` stays as it is: this
            # refusal says nothing about whether that attempt's mail went out.
            SentMail.release(message_id)
        if isinstance(exc, (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused)):
            raise  # the server answered (4xx/5xx): the session itself is fine, keep it
        if isinstance(exc, OSError):  # includes SMTPServerDisconnected and socket errors
            close_connection()  # the next attempt starts a fresh session
        raise
    if message_id:
        _record_sent(message_id, job_id, message.to[0], message.subject)
    return True


def _record_sent(message_id: str, job_id: str, recipient: str, subject: str) -> None:
    """Mark the row sent, riding out a database blip; never raise: the mail went out."""
    for delay in (*RECORD_RETRY_DELAYS, None):
        try:
            SentMail.mark_sent(message_id, job_id, recipient, subject)
            return
        except DatabaseError as exc:
            if delay is None:
                logger.error("mail %s was accepted but could not be recorded (%s); its row stays 'attempting'", message_id, exc)
                return
            if not db_connection.in_atomic_block:  # (a caller's transaction is the caller's to end)
                close_old_connections()  # a connection the server dropped is reopened for the next try
            time.sleep(delay)


def mime_bytes(message: EmailMultiAlternatives) -> bytes:
    """What Django's SMTP backend would put on the wire for `message`."""
    return message.message().as_bytes(linesep="\r\n")


def _deliver(backend: BaseEmailBackend, message: EmailMultiAlternatives, data: bytes | None, progress: _Progress) -> None:
    smtp = getattr(backend, "connection", None)
    if not isinstance(smtp, smtplib.SMTP):
        backend.send_messages([message])
        return
    send_data = smtp.data

    def data_command(msg: bytes | str) -> tuple[int, bytes]:
        progress.data_started = True  # smtplib's sendmail calls this after MAIL and RCPT succeeded
        return send_data(msg)

    smtp.data = data_command  # type: ignore[method-assign]  # this call only
    try:
        if data is None:
            backend.send_messages([message])
            return
        # Django's SMTP backend's _send(), with the bytes already built.
        encoding = message.encoding or settings.DEFAULT_CHARSET
        smtp.sendmail(
            sanitize_address(message.from_email, encoding),
            [sanitize_address(address, encoding) for address in message.recipients()],
            data,
        )
    finally:
        del smtp.data


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


def render(template: str, user: Any | None, language: str, extra: dict[str, Any] | None = None) -> Rendered:
    """Subjects are fixed text per template (tests/security checks that no template puts a variable
    other than site_name there): what a member typed never reaches a Subject header. `extra`: the
    account mails' link and its validity, made by the job when it runs."""
    if template not in TEMPLATES:
        raise PermanentJobError(f"unknown mail template {template!r}")
    with translation.override(language):
        context: dict[str, Any] = {**(extra or {}), "site_name": "EGOEJO"}
        if user is not None:
            context.update(name=user.first_name or user.get_username(), username=user.get_username())
        return Rendered(
            subject=render_to_string(f"emails/{language}/{template}_subject.txt", context).strip(),
            html=render_to_string(f"emails/{language}/{template}.html", context),
            text=render_to_string(f"emails/{language}/{template}.txt", context),
        )


def templated_message(
    template: str, user: Any, job_id: str, language: str | None = None, extra: dict[str, Any] | None = None
) -> EmailMultiAlternatives:
    rendered = render(template, user, language or language_of(user.pk), extra)
    return build_message(user.email, rendered.subject, rendered.html, rendered.text, message_id_for(job_id, user.email))


def address_message(template: str, to_email: str, job_id: str, language: str) -> EmailMultiAlternatives:
    """A templated mail to an address that is no member's (yet): no personal context at all."""
    available = {code for code, _ in settings.LANGUAGES}
    rendered = render(template, None, language if language in available else settings.LANGUAGE_CODE)
    return build_message(to_email, rendered.subject, rendered.html, rendered.text, message_id_for(job_id, to_email))


def active_user(user_id: int) -> Any | None:
    return get_user_model().objects.filter(pk=user_id, is_active=True).first()


def pending_user(user_id: int) -> Any | None:
    """An account still waiting for its address to be confirmed (app.models.PendingAccount)."""
    return get_user_model().objects.filter(pk=user_id, is_active=False, pending__isnull=False).first()


def active_user_by_address(address: str) -> Any | None:
    """The active account using this address (registration keeps addresses unique, case aside)."""
    return get_user_model().objects.filter(email__iexact=address.strip(), is_active=True).order_by("pk").first()
