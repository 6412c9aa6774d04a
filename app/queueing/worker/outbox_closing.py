"""OutboxClosing: every end of a job closes its outbox row (outbox.py), once RQ has decided.

Success, final failure (a work-horse that died included), a stop by an operator. A job without an
`outbox` mark in its meta has no row (written into Redis by other means; the reconciler reads
Redis anyway).
"""

from __future__ import annotations

from typing import Any

from rq.job import JobStatus

from .. import outcomes
from ..job_reports import last_line
from ..outbox_ends import mark_cancelled, mark_ended


class OutboxClosing:
    def succeeded(self, job: Any) -> None:
        if job.meta.get("outbox"):
            mark_ended(job.id, failed=False, outcome=outcomes.of(job, succeeded=True))

    def failed(self, job: Any, exc_string: str) -> None:
        """After RQ's handle_job_failure: a retried job is neither FAILED nor STOPPED, its row stays open."""
        status = job.get_status(refresh=False)
        if not job.meta.get("outbox"):
            return
        if status == JobStatus.FAILED:
            mark_ended(job.id, failed=True, reason=last_line(exc_string), outcome=outcomes.of(job, succeeded=False))
        elif status == JobStatus.STOPPED:
            mark_cancelled([job.id], "stopped by an operator")
