"""Enqueueing mail: addresses checked before anything is queued; fan-outs in batches."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ValidationError

from app.jobs.emails import send_bulk_email, send_email
from app.services.mail.delivery import TEMPLATES, check_address

BATCH_SIZE = 100


def queue_email(
    to_email: str, subject: str, html_content: str, text_content: str | None = None, owner_id: int | None = None
) -> str:
    """Raises ValidationError for a bad address: the caller hears it now, nothing is queued."""
    check_address(to_email)
    return send_email.with_options(owner_id=owner_id).delay(to_email, subject, html_content, text_content).id


def queue_bulk_email(template: str, user_ids: Sequence[int], batch_size: int = BATCH_SIZE) -> list[str]:
    """One job per batch of members, all enqueued in one pipelined round trip after commit."""
    if template not in TEMPLATES:
        raise ValidationError(f"Unknown mail template {template!r}; choose one of {', '.join(TEMPLATES)}.")
    if not 1 <= batch_size <= 1000:
        raise ValidationError("batch_size must be between 1 and 1000.")
    ids = list(dict.fromkeys(int(user_id) for user_id in user_ids))  # each member once, order kept
    batches = [[template, ids[start : start + batch_size]] for start in range(0, len(ids), batch_size)]
    return send_bulk_email.delay_many(batches)
