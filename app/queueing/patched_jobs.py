"""A test's patch of `<job>.delay`, honoured by every enqueue path.

`mock.patch("app.jobs.images.process_image.delay")` sets an attribute on the declared job
(declarations.DeclaredJob). Every enqueue of a declared job ends in enqueueing.submit() or
submit_many(), which ask `replacement()` whether the job's own method was replaced and call the
replacement instead of recording the job: so `.with_options(...).delay`, `enqueue(job, ...)` (tests),
`django_rq.enqueue(job, ...)` and `job.task.enqueue(...)` are caught by a patch of `.delay`
(README.md, "Testing code that enqueues"; tests/test_testing_habits.py).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

_declared: dict[str, Any] = {}
_originals: dict[str, object] = {}
# The replacements being called: a mock that wraps the real method (`wraps=job.delay`) reaches
# submit() again, which then records the job rather than call the mock a second time.
_replacing: contextvars.ContextVar[frozenset[tuple[str, str]]] = contextvars.ContextVar("replacing", default=frozenset())


def register_declared(path: str, declared: Any, replaceable: Mapping[str, object]) -> None:
    """The declared job object behind `path`, and the methods of its class a test may replace."""
    _declared[path] = declared
    _originals.update(replaceable)


def replacement(path: str, name: str) -> Callable[..., Any] | None:
    """What a test put in place of `<declared job>.<name>` (a mock), or None."""
    declared = _declared.get(path)
    if declared is None or (path, name) in _replacing.get():
        return None
    method = getattr(declared, name)
    return None if getattr(method, "__func__", None) is _originals[name] else method


@contextmanager
def calling_replacement(path: str, name: str) -> Iterator[None]:
    token = _replacing.set(_replacing.get() | {(path, name)})
    try:
        yield
    finally:
        _replacing.reset(token)
