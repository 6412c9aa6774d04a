"""OutboxClosing: every end of a job closes its outbox row (outbox.py), once RQ has decided, and
every retry writes the row's ledger (attempts, history, last error, next run).

Success, final failure (a work-horse that died included), a stop by an operator. A job without an
`outbox` mark in its meta has no row (written into Redis by other means; the reconciler reads
Redis anyway). One UPDATE each, the ledger's columns in it (tests/test_ledger.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rq.job import JobStatus

from .. import outcomes
from ..job_reports import last_line
from ..outbox_ends import mark_cancelled, mark_ended, mark_retrying


class OutboxClosing:
    def succeeded(self, job: Any) -> None:
        if job.meta.get("outbox"):
            ledger = outcomes.ledger(job, outcomes.last_attempt(job, "succeeded"))
            mark_ended(job.id, failed=False, outcome=outcomes.of(job, succeeded=True), ledger=ledger)

    def failed(self, job: Any, exc_string: str, next_retry_at: datetime | None = None) -> None:
        """After RQ's handle_job_failure: a retried job is neither FAILED nor STOPPED, its row stays
        open and its ledger is written (`next_retry_at`: when RQ runs it again)."""
        status = job.get_status(refresh=False)
        if not job.meta.get("outbox"):
            return
        if status == JobStatus.FAILED:
            ledger = outcomes.ledger(job)
            mark_ended(
                job.id, failed=True, reason=last_line(exc_string), outcome=outcomes.of(job, succeeded=False), ledger=ledger,
                replace_failure=True,
            )
        elif status == JobStatus.STOPPED:
            mark_cancelled([job.id], "stopped by an operator")
        elif status in (JobStatus.SCHEDULED, JobStatus.QUEUED):
            mark_retrying(job.id, outcomes.ledger(job), next_retry_at)
