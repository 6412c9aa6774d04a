"""RQ's own log lines for a failed attempt, filtered: the worker logs one line of its own.

RQ 3.0 logs each failure's whole traceback at ERROR on `rq.worker` (Worker.handle_exception,
before the exception handlers run) and each retry's "N remaining" at INFO on `rq.job`
(Job.retry, Job._handle_retry_result); the worker's one line per failed attempt says the same,
numbered the way the ledger numbers attempts (workers._log_failed_attempt). A logging Filter on
RQ's two loggers (the standard hook, no patch) drops exactly those records, by the format strings
RQ passes (its message templates, not the formatted text: a job's own text never matches).
tests/test_rq_compat.py::test_rqs_failure_and_retry_log_templates_are_the_ones_filtered pins them.
"""

from __future__ import annotations

import logging

# RQ 3.0's templates (rq/worker/base.py handle_exception; rq/job.py retry, _handle_retry_result).
RQ_FAILURE_TRACEBACK = "Worker %s: job %s: exception raised while executing (%s)\n%s"
RQ_RETRY_LINES = frozenset({
    "Job %s: scheduled for retry at %s, %s remaining",
    "Job %s: enqueued for retry, %s remaining",
})
_FILTERED = {"rq.worker": frozenset({RQ_FAILURE_TRACEBACK}), "rq.job": RQ_RETRY_LINES}


class _RQFailureLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in _FILTERED.get(record.name, ())


RQ_FAILURE_LINES_FILTER = _RQFailureLines()
RQ_FAILURE_LOGGERS = tuple(_FILTERED)


def quiet_rq_failure_logs() -> None:
    """Install the filter on RQ's loggers (idempotent: a logger holds a filter once)."""
    for name in RQ_FAILURE_LOGGERS:
        logging.getLogger(name).addFilter(RQ_FAILURE_LINES_FILTER)
