"""Enqueue a declared job by reference, with no owner unless given: the tests' shorthand.

`enqueue(f, *args)` is `f.delay(*args)` without the owner read from the declaration, so a test
chooses the owner (`owner_id=`) or has none; `enqueue_many` is `f.delay_many(calls)`. Production
code calls `.delay()` / `.delay_many()` (app/queueing/declarations.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from app.queueing import catalog as registry
from app.queueing.enqueueing import submit, submit_many


def enqueue(func: Callable[..., Any], *args: Any, owner_id: int | None = None, job_id: str | None = None, **kwargs: Any) -> str:
    """`func(*args, **kwargs)` as a job, by reference: returns its id."""
    return submit(registry.spec_for(func), list(args), kwargs, owner_id=owner_id, job_id=job_id).id


def enqueue_many(func: Callable[..., Any], calls: Sequence[Sequence[Any]], owner_id: int | None = None) -> list[str]:
    return submit_many(registry.spec_for(func), [list(args) for args in calls], owner_id=owner_id)
