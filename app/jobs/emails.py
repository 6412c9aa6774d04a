"""Jobs of the `emails` queue."""

from __future__ import annotations

import logging

from rq import get_current_job

from app.services import mail

logger = logging.getLogger("app.jobs.emails")


def send_email(to_email: str, subject: str, html_content: str, text_content: str | None = None) -> dict[str, str]:
    message = mail.build_message(to_email, subject, html_content, text_content)
    mail.send_message(message)
    job = get_current_job()
    logger.info("mail sent job=%s", job.id if job else None)
    return {"to": to_email}


def send_welcome_email(user_id: int) -> dict[str, object]:
    message = mail.render_welcome(user_id)
    if message is None:
        # Deleted or deactivated since registration: nothing to send, nothing to retry.
        logger.info("welcome mail skipped: no active user %s", user_id)
        return {"user_id": user_id, "sent": False}
    mail.send_message(message)
    return {"user_id": user_id, "sent": True}
