"""Exceptions that tell the worker whether a failure is worth retrying."""

from __future__ import annotations


class PermanentJobError(Exception):
    """Retrying cannot help (bad input, missing row, corrupt file): fail once, keep the reason."""


class TransientJobError(Exception):
    """A passing condition (a server said "try later"): retry with backoff."""
