"""A fan-out batch: one template to many members, over one SMTP connection.

A bad recipient doesn't stop the batch: it is reported (failed: permanent; deferred: 4xx).
While one mail is on the wire — four replies to wait for: MAIL, RCPT, DATA, end of data —
a second thread renders the next ones and builds their MIME bytes, which is most of the CPU a
mail costs here; the database and the SMTP session stay with the job's own thread.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives

from app.queueing import PermanentJobError
from app.services.mail import delivery

logger = logging.getLogger(__name__)

# How far the preparing thread may run ahead of the sending one.
PREPARE_AHEAD = 8


@dataclass
class BulkReport:
    sent: int = 0
    already_sent: int = 0
    skipped: list[int] = field(default_factory=list)  # no such active member
    failed: dict[str, str] = field(default_factory=dict)  # address → permanent reason
    deferred: dict[str, str] = field(default_factory=dict)  # address → transient reason

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "already_sent": self.already_sent,
            "skipped": self.skipped,
            "failed": self.failed,
            "deferred": self.deferred,
        }


@dataclass(frozen=True)
class _Prepared:
    address: str
    message: EmailMultiAlternatives | None = None
    data: bytes | None = None
    error: str | None = None  # a permanent problem found while composing (a bad address)


def send_bulk(template: str, user_ids: list[int], job_id: str, on_progress: Callable[[int], None] = lambda done: None) -> BulkReport:
    """Send `template` to each member; see the module's docstring."""
    if template not in delivery.TEMPLATES:
        raise PermanentJobError(f"unknown mail template {template!r}")
    report = BulkReport()
    users = {user.pk: user for user in get_user_model().objects.filter(pk__in=user_ids, is_active=True)}
    report.skipped = [user_id for user_id in user_ids if user_id not in users]
    languages = delivery.languages_of(list(users))
    delivery.connection()  # one liveness check (NOOP) for the batch, not one per mail

    def prepare(user: Any) -> _Prepared:
        # Whatever one member's row holds (a header-breaking value, a template error), it is that
        # member's failure, reported; the batch goes on for everyone after it.
        try:
            message = delivery.templated_message(template, user, job_id, languages[user.pk])
            return _Prepared(user.email, message, delivery.mime_bytes(message))
        except PermanentJobError as exc:
            return _Prepared(user.email, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad row never aborts the batch
            logger.warning("bulk mail: member %s could not be composed: %r", user.pk, exc)
            return _Prepared(user.email, error=f"could not compose: {type(exc).__name__}: {exc}")

    for prepared in _ahead(prepare, [users[user_id] for user_id in user_ids if user_id in users]):
        if prepared.error is not None or prepared.message is None:
            report.failed[prepared.address] = prepared.error or "could not compose"
            continue
        try:
            # At-most-once: a fan-out reaches many people; one possible loss beats a duplicate to many.
            sent = delivery.send_once(
                prepared.message, job_id, verify_connection=False, data=prepared.data, delivery=delivery.Delivery.AT_MOST_ONCE
            )
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException) as exc:
            code, reason = _refusal(exc)
            target = report.deferred if 400 <= code < 500 else report.failed
            target[prepared.address] = f"{code} {reason}"
            continue
        except ValueError as exc:  # an address or header Django refuses to put on the wire
            report.failed[prepared.address] = f"could not send: {exc}"
            continue
        if sent:
            report.sent += 1
            on_progress(report.sent)  # a run that sends is no crash loop, whatever kills its workers
        else:
            report.already_sent += 1
    return report


def _refusal(exc: smtplib.SMTPRecipientsRefused | smtplib.SMTPResponseException) -> tuple[int, str]:
    """The server's code and reason for refusing one delivery."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reason = next(iter(exc.recipients.values()))
        return code, reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return exc.smtp_code, repr(exc.smtp_error)


def _ahead(prepare: Any, users: list[Any]) -> Iterator[_Prepared]:
    """prepare(user) for each user, in order, computed up to PREPARE_AHEAD ahead in another thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail-prepare") as executor:
        pending = [executor.submit(prepare, user) for user in users[:PREPARE_AHEAD]]
        for index in range(len(users)):
            prepared = pending[index].result()
            if index + PREPARE_AHEAD < len(users):
                pending.append(executor.submit(prepare, users[index + PREPARE_AHEAD]))
            yield prepared
