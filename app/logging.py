"""JSON log lines for production (LOG_FORMAT=json); development keeps plain text."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


class RQHousekeepingAtDebug(logging.Filter):
    """RQ's idle housekeeping, logged by RQ at INFO, moved to DEBUG.

    An idle worker says "cleaning registries" for each queue every few minutes, the project's
    scheduler re-takes RQ's scheduler locks every tick: in ten idle minutes that was an eighth
    of all lines. Per job, RQ's own lines (dequeued, "Successfully completed", "Job OK", result
    kept for N s) repeat what app.queueing.workers logs once per event with the attempt number, so
    they go to DEBUG too: at INFO a job is "job <id> started" and one outcome line (succeeded,
    will be retried, failed). RQ's own failure traceback and "N remaining" retry lines are dropped
    by the worker's filter (app/queueing/rq_compat/logs.py): one line per failed attempt, ours.
    Installed on the `rq.worker` and `rq.scheduler` loggers by settings.LOGGING; matched on
    RQ's format strings, so the message text stays RQ's own.
    """

    MESSAGES = frozenset(
        {
            "Worker %s: cleaning registries for queue: %s",
            "Worker %s: cleaning group registries",
            "Worker %s: job %s result is kept for %s seconds",
            "Worker %s: job %s result discarded immediately",
            "Worker %s: %s: %s (%s)",  # dequeued (with description) and "Job OK"
            "Worker %s: %s: %s",  # dequeued (without description)
            "Successfully completed %s job in %ss on worker %s",
            "Successfully completed job %s in %ss on worker %s",
            "Acquired scheduler lock for %s",
        }
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and isinstance(record.msg, str) and record.msg in self.MESSAGES:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True
