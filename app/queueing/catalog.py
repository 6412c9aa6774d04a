"""Declared queues, jobs and schedules: the one source for routing, policy and what may run.

The domain declares; this layer obeys. A queue is declared once, beside its jobs
(`declare_queue("emails", timeout=60, retries=Retries(5, base=10, cap=600))`), a job once,
beside its function (`@job(emails)`), a recurring job once, beside its job
(`@recurring("*/15 * * * *")`). Every enqueue path looks its function up here: an undeclared
function is refused when it is enqueued, and a worker refuses (without importing anything) a job
from Redis whose function or callback is not declared here.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from .errors import UndeclaredJobError

DAY = 86_400


@dataclass(frozen=True)
class Retries:
    """Exponential backoff with ±25 % jitter: `max` retries, the first after `base` seconds, doubling up to `cap`."""

    max: int
    base: int = 10
    cap: int = 600

    def intervals(self) -> list[int]:
        # Drawn per job, so that a burst of failures doesn't retry in lockstep.
        return [
            max(1, round(min(self.cap, self.base * 2**attempt) * random.uniform(0.75, 1.25)))
            for attempt in range(self.max)
        ]


NO_RETRIES = Retries(0)


@dataclass(frozen=True)
class QueueSpec:
    """A queue and the policy its jobs get unless a job declares its own."""

    name: str
    timeout: int  # seconds a job may run before the worker kills it
    result_ttl: int = DAY  # seconds a finished job (and its result) stays visible
    failure_ttl: int = 7 * DAY  # seconds a failed job stays in the failed registry
    retries: Retries = NO_RETRIES
    wait_budget: int = 300  # seconds a job may wait in the queue before it is late (an alert)


@dataclass(frozen=True)
class JobSpec:
    """A declared job: its import path, its queue, and the policy it runs under."""

    path: str
    queue: QueueSpec
    timeout: int
    result_ttl: int
    failure_ttl: int
    retries: Retries
    owner_arg: str | None = None  # the parameter that names the owning user, for GET /api/jobs/<id>/

    @property
    def queue_name(self) -> str:
        return self.queue.name

    @property
    def max_retries(self) -> int:
        return self.retries.max

    def retry_intervals(self) -> list[int]:
        return self.retries.intervals()

    def owner_of(self, args: Sequence[Any], kwargs: dict[str, Any], func: Callable[..., Any] | None) -> int | None:
        if self.owner_arg is None:
            return None
        if self.owner_arg in kwargs:
            value = kwargs[self.owner_arg]
        else:
            names = _parameter_names(func) if func is not None else []
            index = names.index(self.owner_arg) if self.owner_arg in names else -1
            value = args[index] if 0 <= index < len(args) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class RecurringSpec:
    """A job enqueued on a cron schedule (UTC) under a stable id."""

    id: str
    job: JobSpec
    cron: Callable[[], str]


class Push(NamedTuple):
    """A recorded job on its way to Redis."""

    spec: JobSpec
    job_id: str
    args: list[Any]
    kwargs: dict[str, Any]
    due_at: datetime | None
    at_front: bool = False  # ahead of what its queue holds (a standard task's priority > 0: tasks_backend.py)
    traceparent: str | None = None  # the enqueuer's trace context, W3C format (tracing.py)


@dataclass
class _Registry:
    queues: dict[str, QueueSpec] = field(default_factory=dict)
    jobs: dict[str, JobSpec] = field(default_factory=dict)
    funcs: dict[str, Callable[..., Any]] = field(default_factory=dict)
    recurring: dict[str, RecurringSpec] = field(default_factory=dict)


_registry = _Registry()


def func_path(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def declare_queue(
    name: str,
    *,
    timeout: int,
    result_ttl: int = DAY,
    failure_ttl: int = 7 * DAY,
    retries: Retries = NO_RETRIES,
    wait_budget: int = 300,
) -> QueueSpec:
    """Declare a queue (once, in the module of its jobs). A worker line must serve it."""
    if not name or ":" in name or name == "default":
        raise ValueError(f"invalid queue name {name!r}")
    if result_ttl < 60:
        # The outbox reads a job's end from Redis when the worker could not record it: the hash
        # must outlive at least a few reconciler passes.
        raise ValueError(f"queue {name!r}: result_ttl must be at least 60 s")
    spec = QueueSpec(name, timeout=timeout, result_ttl=result_ttl, failure_ttl=failure_ttl, retries=retries, wait_budget=wait_budget)
    existing = _registry.queues.get(name)
    if existing is not None and existing != spec:
        raise ValueError(f"queue {name!r} is already declared with another policy: {existing}")
    _registry.queues[name] = spec
    return spec


def register_job(spec: JobSpec, func: Callable[..., Any]) -> None:
    _registry.queues.setdefault(spec.queue.name, spec.queue)
    _registry.jobs[spec.path] = spec
    _registry.funcs[spec.path] = func


def register_recurring(spec: RecurringSpec) -> None:
    _registry.recurring[spec.id] = spec


def queue_declared(name: str) -> QueueSpec | None:
    return _registry.queues.get(name)


# -- lookups ------------------------------------------------------------------------------------


def spec_for(func: Callable[..., Any] | str) -> JobSpec:
    """The declaration of `func` (a function, a declared job or an import path); refuses the undeclared."""
    spec = getattr(func, "spec", None)  # a declared job (declarations.DeclaredJob)
    if isinstance(spec, JobSpec):
        return spec
    path = func if isinstance(func, str) else func_path(func)
    try:
        return _registry.jobs[path]
    except KeyError:
        raise UndeclaredJobError(
            f"{path} is not a declared job: declare it with @job(<queue>) in its module "
            f"(declared: {', '.join(sorted(_registry.jobs)) or 'none'})"
        ) from None


def is_declared(path: str | None) -> bool:
    return path in _registry.jobs


def declared_function(path: str) -> Callable[..., Any]:
    """The function behind a declared path, without importing anything by name."""
    try:
        return _registry.funcs[path]
    except KeyError:
        raise UndeclaredJobError(f"{path} is not a declared job") from None


def queues() -> dict[str, QueueSpec]:
    return dict(_registry.queues)


def queue(name: str) -> QueueSpec:
    try:
        return _registry.queues[name]
    except KeyError:
        raise UndeclaredJobError(f"queue {name!r} is not declared (declared: {', '.join(sorted(_registry.queues))})") from None


def jobs() -> dict[str, JobSpec]:
    return dict(_registry.jobs)


def recurring_jobs() -> list[RecurringSpec]:
    return list(_registry.recurring.values())


def refusal(func_name: str | None, callbacks: Iterable[str | None]) -> str | None:
    """Why a job read from Redis may not run here, or None. Looks at names only: imports nothing."""
    if not is_declared(func_name):
        return f"UndeclaredJobError: {func_name!r} is not a declared job; refused without importing it"
    for name in callbacks:
        if name:  # the layer writes no callbacks: an RQ callback is code Redis chose
            return f"UndeclaredJobError: callback {name!r} is not declared; refused without importing it"
    return None


def _parameter_names(func: Callable[..., Any]) -> list[str]:
    return list(signature_of(func).parameters)


@functools.cache
def signature_of(func: Callable[..., Any]) -> inspect.Signature:
    """A declared function's signature, computed once (inspect.signature costs tens of µs a call)."""
    return inspect.signature(func)


def describe(path: str, args: Sequence[Any]) -> str:
    """The job's description in the dashboards: the function's name and its id-like arguments."""
    return f"{path.rpartition('.')[2]}({', '.join(_describe(a) for a in args)})"


def _describe(value: Any) -> str:
    # Job descriptions are shown in the dashboards: ids and numbers only, never user text.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return "…"


def job_options(spec: JobSpec, job_id: str, args: Sequence[Any]) -> dict[str, Any]:
    """What RQ's create_job gets for one call of `spec`: the declared policy, no callbacks."""
    from rq.job import Retry

    return {
        "job_id": job_id,
        "timeout": spec.timeout,
        "result_ttl": spec.result_ttl,
        "failure_ttl": spec.failure_ttl,
        "retry": Retry(max=spec.max_retries, interval=spec.retry_intervals()) if spec.max_retries > 0 else None,
        "meta": job_meta(spec),
        "description": describe(spec.path, args),
    }


def job_meta(spec: JobSpec) -> dict[str, Any]:
    """The meta a pushed job starts with, before its signature (signing.py) is added."""
    # outbox: the job has a row to close when it ends (a recurring job has none, and its worker
    # then spares itself the database round trip).
    return {"max_retries": spec.max_retries, "outbox": 1}
