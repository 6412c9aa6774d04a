"""The domain's way to declare: `@job(queue)` on a function, `@recurring(cron)` above it.

A declared job is still its function (call it to run it here) and gains django-rq's idiom:
`.delay(...)`, `.delay_in(...)`, `.delay_at(...)`, `.delay_many(...)` and `.with_options(...)`,
`.adelay(...)` from async code, and `.task`: the same job as Django's standard `Task` (tasks_backend.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from . import catalog, patched_jobs
from .catalog import JobSpec, QueueSpec, RecurringSpec, Retries, _parameter_names, func_path
from .enqueueing import submit, submit_many, utcnow

if TYPE_CHECKING:
    from rq.job import Job

P = ParamSpec("P")
R = TypeVar("R")


class DeclaredJob(Generic[P, R]):
    """A job function with its declaration: call it to run it here, `.delay()` to run it on a worker.

    `.delay(*args, **kwargs)` records the job in the caller's transaction and pushes it to its
    queue once the transaction commits (after the response, inside a request); `.delay_in()` /
    `.delay_at()` schedule it; `.delay_many()` enqueues a fan-out in one round trip;
    `.with_options(owner_id=..., job_id=...)` sets what is not part of the call.
    """

    def __init__(self, func: Callable[P, R], spec: JobSpec) -> None:
        self.func = func
        self.spec = spec
        self.path = spec.path
        self.__name__ = func.__name__
        self.__qualname__ = func.__qualname__
        self.__module__ = func.__module__
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<declared job {self.path} on '{self.spec.queue_name}'>"

    def with_options(self, *, owner_id: int | None = None, job_id: str | None = None) -> _Bound[P]:
        return _Bound(self, owner_id, job_id)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return _Bound(self, None, None).delay(*args, **kwargs)

    def delay_in(self, delay: timedelta, *args: P.args, **kwargs: P.kwargs) -> Job:
        return _Bound(self, None, None).delay_in(delay, *args, **kwargs)

    def delay_at(self, when: datetime, *args: P.args, **kwargs: P.kwargs) -> Job:
        return _Bound(self, None, None).delay_at(when, *args, **kwargs)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """`.delay()` from async code (an `async def` view): the same transaction and after-response push."""
        from asgiref.sync import sync_to_async

        return await sync_to_async(self.delay, thread_sensitive=True)(*args, **kwargs)

    @property
    def task(self) -> Any:
        """This job as Django's standard `Task` (django_tasks; tasks_backend.py): `.task.enqueue(...)`, same declaration."""
        from .tasks_backend import task_for

        return task_for(self.path)

    def delay_many(self, calls: Iterable[Sequence[Any]], *, owner_id: int | None = None) -> list[str]:
        """One job per argument list (positional), all recorded in one INSERT and pushed in one round trip."""
        return submit_many(self.spec, [list(args) for args in calls], owner_id=owner_id)


@dataclass(frozen=True)
class _Bound(Generic[P]):
    job: DeclaredJob[P, Any]
    owner_id: int | None
    job_id: str | None

    def _owner(self, args: Sequence[Any], kwargs: dict[str, Any]) -> int | None:
        if self.owner_id is not None:
            return self.owner_id
        return self.job.spec.owner_of(args, kwargs, self.job.func)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return submit(self.job.spec, list(args), dict(kwargs), owner_id=self._owner(args, kwargs), job_id=self.job_id)

    def delay_in(self, delay: timedelta, *args: P.args, **kwargs: P.kwargs) -> Job:
        return self.delay_at(utcnow() + delay, *args, **kwargs)

    def delay_at(self, when: datetime, *args: P.args, **kwargs: P.kwargs) -> Job:
        return submit(
            self.job.spec, list(args), dict(kwargs), owner_id=self._owner(args, kwargs), job_id=self.job_id, due_at=when
        )


# The methods a test may patch on a declared job and have every enqueue of it call instead
# (registry.replacement).
_REPLACEABLE = {"delay": DeclaredJob.delay, "delay_at": DeclaredJob.delay_at, "delay_many": DeclaredJob.delay_many}


def job(
    queue: QueueSpec | str,
    *,
    timeout: int | None = None,
    result_ttl: int | None = None,
    failure_ttl: int | None = None,
    retries: Retries | None = None,
    owner: str | None = None,
) -> Callable[[Callable[P, R]], DeclaredJob[P, R]]:
    """Declare a module-level function as a job of `queue` (django-rq's `@job("emails")`, declared).

    `owner` names the parameter that holds the owning user's id (who may read the job's state).
    """

    def declare(func: Callable[P, R]) -> DeclaredJob[P, R]:
        if "<locals>" in func.__qualname__ or "." in func.__qualname__:
            raise ValueError(f"{func.__qualname__}: a job must be a module-level function")
        spec_queue = queue if isinstance(queue, QueueSpec) else catalog.queue_declared(queue)
        if spec_queue is None:
            raise ValueError(f"{func_path(func)}: queue {queue!r} is not declared (declare_queue first)")
        if owner is not None and owner not in _parameter_names(func):
            raise ValueError(f"{func_path(func)}: owner={owner!r} is not one of its parameters")
        spec = JobSpec(
            path=func_path(func),
            queue=spec_queue,
            timeout=timeout if timeout is not None else spec_queue.timeout,
            result_ttl=result_ttl if result_ttl is not None else spec_queue.result_ttl,
            failure_ttl=failure_ttl if failure_ttl is not None else spec_queue.failure_ttl,
            retries=retries if retries is not None else spec_queue.retries,
            owner_arg=owner,
        )
        catalog.register_job(spec, func)
        declared = DeclaredJob(func, spec)
        patched_jobs.register_declared(spec.path, declared, _REPLACEABLE)
        return declared

    return declare


def recurring(cron: str | Callable[[], str], *, id: str | None = None) -> Callable[[DeclaredJob[P, R]], DeclaredJob[P, R]]:
    """Declare a declared job as recurring: enqueued on the UTC `cron` schedule, under a stable id.

    `cron` may be a callable, read each time the schedules are checked (a setting, say).
    """

    def declare(declared: DeclaredJob[P, R]) -> DeclaredJob[P, R]:
        if not isinstance(declared, DeclaredJob):
            raise TypeError("@recurring goes above @job")
        schedule_id = id or declared.spec.path.rpartition(".")[2].replace("_", "-")
        cron_of: Callable[[], str] = cron if callable(cron) else (lambda: cron)
        catalog.register_recurring(RecurringSpec(schedule_id, declared.spec, cron_of))
        return declared

    return declare


