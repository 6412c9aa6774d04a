"""Which jobs the layer made: an HMAC over each job it writes, checked before any job runs.

Redis is not a trust boundary: whoever can write to it can write a job hash naming a declared
function with arguments of their choosing (a mail to an outside address, a bulk mail, an image
path outside media). So every job the layer writes (a committed enqueue pushed from the outbox,
a declared schedule) carries `meta["sig"]`: an HMAC-SHA256, under a key Redis never holds, over
exactly what decides the job's effect: its id, queue, function and arguments (the data bytes as
written), description, timeout, TTLs, retry intervals and the stable part of its meta. A worker
runs a job only when the signature verifies (`refusal`, called by jobclass.refusal_of), and only
when the hash holds no field the layer does not write (callbacks, webhooks, dependencies,
repeats, rate limits, class names in meta, anything RQ adds later): those choose effects
beyond the declared function.

Why a signature rather than a match against the outbox row: it costs no database round trip per
job (the light pool's throughput), it holds while the database is away, and schedules have no
row. A key rotates without losing queued jobs: the first of QUEUEING_SIGNING_KEYS signs, every
one of them verifies (settings: JOB_SIGNING_KEY, JOB_SIGNING_KEY_FALLBACKS).

What a signature cannot tell: a signed job pushed again under its own id (a replay) is the job
the layer made; it runs under the usual once-only rules (a job whose status is not `queued` is
dropped; jobs are idempotent). tests/security/test_forged_jobs.py forges hashes for every
declared job and every effect-choosing field.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

SIGNATURE_META = "sig"
_VERSION = "egoejo-job/1"
# Meta keys the layer writes when it creates a job; signed, so they cannot be changed.
SIGNED_META = ("max_retries", "outbox", "cron_string", "use_local_timezone", "otel_traceparent")
# Meta keys written after creation, by the layer (the abandon count, each attempt's error, each
# attempt its worker died under: outcomes.py); never signed.
MUTABLE_META = ("abandoned", "errors", "deaths")
ALLOWED_META = frozenset((SIGNATURE_META, *SIGNED_META, *MUTABLE_META))

# Every field RQ 3.0 writes into a job hash over the life of a job the layer made (checked against
# RQ's own code path by tests/test_rq_compat.py): any other field is one the layer did not write.
ALLOWED_FIELDS = frozenset(
    {
        "created_at", "data", "origin", "description", "status", "meta", "timeout", "result_ttl",
        "failure_ttl", "enqueued_at", "started_at", "ended_at", "last_heartbeat", "worker_name",
        "retries_left", "number_of_retries", "retry_intervals", "enqueue_at_front",
        "enqueue_at_front_on_retry", "result", "exc_info",
        # Written by the layer's hand-over (rq_compat.CLAIMED_PUSH_FIELD): which push a worker or a
        # take-back claimed, compared with `enqueued_at`, never read as anything else.
        "claimed_push",
        # Always written by RQ, and must stay empty: a callback or a group is not the layer's.
        "success_callback_name", "failure_callback_name", "stopped_callback_name", "group_id",
    }
)
MUST_BE_EMPTY = ("success_callback_name", "failure_callback_name", "stopped_callback_name", "group_id")
UNSIGNED = "ForgedJobError: it carries no signature of the queueing layer"


def keys() -> tuple[bytes, ...]:
    """The signing keys, the current one first (settings.QUEUEING_SIGNING_KEYS)."""
    from django.conf import settings

    configured = tuple(k if isinstance(k, bytes) else k.encode() for k in settings.QUEUEING_SIGNING_KEYS)
    if not configured:
        raise RuntimeError("QUEUEING_SIGNING_KEYS is empty: jobs cannot be signed")
    return configured


class SignedFields(NamedTuple):
    """What a signature covers: the fields that decide a job's effect, as the layer writes them."""

    job_id: str
    origin: str
    data: bytes  # the serialized call, as written to the hash (before compression)
    description: str | None
    timeout: Any
    result_ttl: Any
    failure_ttl: Any
    retry_intervals: Sequence[int] | None
    meta: Mapping[str, Any]


def fields_of(job: Any) -> SignedFields:
    """An RQ job's signed fields as it stands (its data serialized as RQ writes it)."""
    return SignedFields(
        job.id, job.origin, job.data, job.description, job.timeout, job.result_ttl, job.failure_ttl,
        job.retry_intervals, job.meta,
    )


def _message(fields: SignedFields) -> bytes:
    head = [
        _VERSION, fields.job_id, fields.origin, fields.description, _int(fields.timeout), _int(fields.result_ttl),
        _int(fields.failure_ttl), list(fields.retry_intervals) if fields.retry_intervals is not None else None,
        {name: fields.meta[name] for name in SIGNED_META if name in fields.meta},
    ]
    return json.dumps(head, separators=(",", ":"), sort_keys=True).encode() + b"\0" + fields.data


def _int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _digest(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(fields: SignedFields) -> str:
    """The signature of a job with these fields, under the current key."""
    return _digest(keys()[0], _message(fields))


def sign_job(job: Any) -> str:
    """The signature of an RQ job as it stands."""
    return sign(fields_of(job))


def refusal(job: Any, fields: Iterable[str], empty_fields: Mapping[str, bool]) -> str | None:
    """Why a job read from Redis was not made by the layer, or None. Imports and calls nothing.

    `fields`: the names of the hash's fields as Redis holds them; `empty_fields`: for each of
    MUST_BE_EMPTY present, whether it is empty.
    """
    unknown = sorted(set(fields) - ALLOWED_FIELDS)
    if unknown:
        return f"ForgedJobError: fields the layer never writes: {', '.join(unknown)[:200]}"
    set_but_must_be_empty = sorted(name for name, empty in empty_fields.items() if not empty)
    if set_but_must_be_empty:
        return f"ForgedJobError: fields the layer leaves empty are set: {', '.join(set_but_must_be_empty)}"
    meta = job.meta
    if not isinstance(meta, dict):
        return "ForgedJobError: its meta is not a JSON object"
    foreign = sorted(str(name) for name in meta if name not in ALLOWED_META)
    if foreign:
        return f"ForgedJobError: meta keys the layer never writes: {', '.join(foreign)[:200]}"
    presented = meta.get(SIGNATURE_META)
    if not isinstance(presented, str):
        return UNSIGNED
    try:
        message = _message(fields_of(job))
    except (TypeError, ValueError):
        return "ForgedJobError: its fields are not those of a job the layer makes"
    if not any(hmac.compare_digest(_digest(key, message), presented) for key in keys()):
        return "ForgedJobError: its signature does not match its fields (written or changed outside the queueing layer)"
    max_retries = meta.get("max_retries")
    if job.retries_left is not None and (not isinstance(max_retries, int) or job.retries_left > max_retries):
        return "ForgedJobError: more retries left than its declaration allows"
    return None
