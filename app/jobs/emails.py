"""Jobs of the `emails` queue. Each message is sent at most once (see app/services/mail/delivery.py)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from rq import get_current_job

from app.queueing import Retries, TransientJobError, declare_queue, job, report_progress
from app.services import account_tokens
from app.services.mail import batch_sending, delivery

logger = logging.getLogger(__name__)

# A welcome mail should leave within a minute (wait_budget: the "jobs late" alert).
emails = declare_queue("emails", timeout=60, result_ttl=86_400, retries=Retries(5, base=10, cap=600), wait_budget=60)


def _job_id() -> str:
    current = get_current_job()
    return current.id if current else uuid.uuid4().hex


@job(emails)
def send_email(to_email: str, subject: str, html_content: str, text_content: str | None = None) -> dict[str, Any]:
    job_id = _job_id()
    message = delivery.build_message(to_email, subject, html_content, text_content, delivery.message_id_for(job_id, to_email))
    sent = delivery.send_once(message, job_id)
    return {"to": to_email, "message_id": message.extra_headers["Message-ID"], "sent": sent}


def _mail_member(template: str, user_id: int, links: Callable[[Any], dict[str, Any]] | None = None, *, pending: bool = False) -> dict[str, Any]:
    user = delivery.pending_user(user_id) if pending else delivery.active_user(user_id)
    if user is None:
        # Deleted, deactivated or (pending) confirmed or replaced since: nothing to send, nothing to retry.
        logger.info("%s mail skipped: no %s user %s", template, "pending" if pending else "active", user_id)
        return {"user_id": user_id, "sent": False}
    job_id = _job_id()
    # Links are made now, from the account's state: no token travels through Redis (app/services/account_tokens.py).
    message = delivery.templated_message(template, user, job_id, extra=links(user) if links else None)
    sent = delivery.send_once(message, job_id)
    return {"user_id": user_id, "sent": sent, "message_id": message.extra_headers["Message-ID"]}


@job(emails, owner="user_id")
def send_welcome_email(user_id: int) -> dict[str, Any]:
    return _mail_member("welcome", user_id)


@job(emails, owner="user_id")
def send_confirmation_email(user_id: int) -> dict[str, Any]:
    """A new registration: the link that proves the address (and activates the account)."""
    return _mail_member("confirm_address", user_id, _confirmation_links, pending=True)


@job(emails, owner="user_id")
def send_account_exists_email(user_id: int) -> dict[str, Any]:
    """Someone tried to register with this member's address: tell the member (with a link to set a
    new password, should they have forgotten theirs), not the registrant."""
    return _mail_member("account_exists", user_id, _reset_links)


@job(emails)
def send_password_reset_email(to_email: str) -> dict[str, Any]:
    """A password reset was asked for this address: the link, if an active account uses it; else nothing.
    Enqueued for every well-formed request, so that the web's answer and its time tell nothing."""
    user = delivery.active_user_by_address(to_email)
    if user is None:
        logger.info("password reset mail skipped: no active account uses the address")
        return {"sent": False}
    return _mail_member("password_reset", user.pk, _reset_links)


def _confirmation_links(user: Any) -> dict[str, Any]:
    return {"link": account_tokens.confirmation_link(user), "valid_hours": account_tokens.valid_hours()}


def _reset_links(user: Any) -> dict[str, Any]:
    return {"link": account_tokens.reset_link(user), "valid_hours": account_tokens.valid_hours()}


@job(emails)
def send_username_taken_email(to_email: str, language: str) -> dict[str, Any]:
    """A registration from this address chose a taken username: tell the address, nothing more."""
    job_id = _job_id()
    message = delivery.address_message("username_taken", to_email, job_id, language)
    sent = delivery.send_once(message, job_id)
    return {"to": to_email, "sent": sent, "message_id": message.extra_headers["Message-ID"]}


@job(emails)
def send_bulk_email(template: str, user_ids: list[int]) -> dict[str, Any]:
    """One batch of a fan-out, over one SMTP connection; bad recipients are reported, not fatal."""
    report = batch_sending.send_bulk(template, user_ids, _job_id(), on_progress=report_progress)
    if report.deferred:
        # Retried with backoff; what this run sent is recorded and won't be sent again.
        raise TransientJobError(f"{len(report.deferred)} recipient(s) deferred by the server: {report.deferred}")
    if report.failed:
        logger.warning("bulk mail: %d recipient(s) refused for good: %s", len(report.failed), report.failed)
    return report.as_dict()
