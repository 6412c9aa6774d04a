"""Exceptions of the queueing layer: whether a failure is worth retrying, and refused jobs."""

from __future__ import annotations


class PermanentJobError(Exception):
    """Retrying cannot help (bad input, missing row, corrupt file): fail once, keep the reason."""


class TransientJobError(Exception):
    """A passing condition (a server said "try later"): retry with backoff."""


class UndeclaredJobError(PermanentJobError):
    """A function (or callback) that no `@job` declaration names: never enqueued, never run."""


class UnsupportedJobOption(ValueError):
    """An RQ enqueue option that the declared job's policy owns (or that this layer does not support)."""
