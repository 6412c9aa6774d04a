"""JSON only, in every process (not a fast path: always on, from the app's ready()).

RQ's default serializer is pickle, and every reader that does not name a serializer (django-rq's
worker pages and "clear failed jobs", rq-dashboard's job actions, rq-scheduler) would unpickle
what Redis holds. `install_json_only` makes RQ's default read and write JSON
(`serialization.JobSerializer`); a job whose data is not a JSON call reads as a call of
UNREADABLE_FUNC instead of raising, and `Job.restore` leaves out the fields it cannot read
(naming them in `job.unreadable_fields`). tests/test_rq_compat.py pins both on RQ's own code paths.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import rq.serializers
import rq.utils
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job, JobStatus

from ..serialization import JobSerializer

# What a job whose data is not a JSON call (a pickle, garbage, the wrong shape) calls: no function
# has this name, so every worker refuses it, and every page shows it as what it is.
UNREADABLE_FUNC = "(unreadable job data)"
_original_deserialize_data = Job._deserialize_data


def _deserialize_data_or_mark(job: Job) -> None:
    """Job._deserialize_data, reading data that is not a JSON call as a call of UNREADABLE_FUNC."""
    try:
        _original_deserialize_data(job)  # type: ignore[no-untyped-call]  # rq leaves it untyped
        shaped = (
            isinstance(job._func_name, str)
            and isinstance(job._args, (list, tuple))
            and isinstance(job._kwargs, dict)
            and all(isinstance(name, str) for name in job._kwargs)
        )
    except DeserializationError:
        shaped = False
    if not shaped:
        job._func_name, job._instance, job._args, job._kwargs = UNREADABLE_FUNC, None, (), {}


# The fields of a job hash by the form RQ 3.0's Job.restore reads them in (rq/job.py).
_TEXT_FIELDS = (
    "origin", "worker_name", "description", "group_id", "dependency_id", "rate_limit_key",
    "success_callback_name", "failure_callback_name", "stopped_callback_name",
)
_DATE_FIELDS = ("created_at", "enqueued_at", "started_at", "ended_at", "last_heartbeat")
_INT_FIELDS = (
    "timeout", "result_ttl", "failure_ttl", "number_of_retries", "retries_left", "repeats_left", "ttl",
    "rate_limit_concurrency", "success_callback_timeout", "failure_callback_timeout", "stopped_callback_timeout",
    "allow_dependency_failures", "enqueue_at_front", "enqueue_at_front_on_retry",
)
_JSON_FIELDS = ("retry_intervals", "repeat_intervals", "dependency_ids", "webhooks")
_CHECKED_FIELDS = frozenset((*_TEXT_FIELDS, *_DATE_FIELDS, *_INT_FIELDS, *_JSON_FIELDS, "status", "exc_info"))
_original_restore = Job.restore


def _restore_or_mark(job: Job, raw_data: Any) -> Any:
    """Job.restore that never raises on what a field holds: a hash RQ did not write (bytes that are
    not text, a status RQ does not know, a date or a number that does not parse) is read without
    the fields it cannot read, and the job remembers their names in `unreadable_fields`."""
    job.unreadable_fields = ()  # type: ignore[attr-defined]
    try:
        return _original_restore(job, raw_data)
    except NoSuchJobError:
        raise
    except Exception:
        pass
    readable: dict[Any, Any] = {}
    dropped: list[str] = []
    for raw_name, value in raw_data.items():
        name = raw_name.decode("utf-8", "replace") if isinstance(raw_name, bytes) else str(raw_name)
        if _field_reads(name, value):
            readable[raw_name] = value
        else:
            dropped.append(name)
    job.unreadable_fields = tuple(sorted(dropped))  # type: ignore[attr-defined]
    try:
        return _original_restore(job, readable)
    except NoSuchJobError:
        raise
    except Exception:  # what else could fail: read only what a job must have
        job.unreadable_fields = tuple(sorted(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in raw_data))  # type: ignore[attr-defined]
        return _original_restore(job, {key: raw_data[key] for key in raw_data if key in (b"data", "data")})


def _field_reads(name: str, value: Any) -> bool:
    if name not in _CHECKED_FIELDS:
        return True  # data, meta, result: read through the serializer, which never raises; others, ignored by RQ
    try:
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        if name in _DATE_FIELDS:
            rq.utils.utcparse(text)
        elif name == "status":
            JobStatus(text)
        elif name in _INT_FIELDS:
            int(text)
        elif name in _JSON_FIELDS:
            json.loads(text)
        elif name == "exc_info":
            try:
                zlib.decompress(value).decode("utf-8")
            except zlib.error:
                pass  # RQ falls back to the bytes as they are, which decoded as text above
    except (UnicodeDecodeError, ValueError, TypeError, RecursionError):
        return False
    return True


def install_json_only() -> None:
    """No reader in this process unpickles, and none fails on what a job hash holds: RQ's default
    serializer is JSON, unreadable data reads as a marker, unreadable fields are left out."""
    rq.serializers.DefaultSerializer.dumps = staticmethod(JobSerializer.dumps)
    rq.serializers.DefaultSerializer.loads = staticmethod(JobSerializer.loads)
    Job._deserialize_data = _deserialize_data_or_mark  # type: ignore[method-assign]
    Job.restore = _restore_or_mark  # type: ignore[method-assign,assignment]

