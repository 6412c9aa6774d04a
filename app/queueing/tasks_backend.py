"""Django's standard task API (DEP 0014: `django.tasks` in Django 6.0, the `django_tasks` backport
on 5.2) on this layer: `TASKS = {"default": {"BACKEND": "app.queueing.tasks_backend.OutboxTaskBackend"}}`.

    from django_tasks import task            # Django 6.x: from django.tasks import task

    @task(queue_name="emails")                # a declared queue: its policy (timeout, retries, TTLs, wait budget)
    def send_receipt(contribution_id: int) -> dict: ...

    result = send_receipt.enqueue(contribution.pk)     # the outbox row now, the push after commit
    send_receipt.get_result(result.id).status          # READY, RUNNING, SUCCESSFUL or FAILED

- A function given to `@task` is declared to the catalog, like `@job`, with its queue's policy:
  one declaration per function. A Task on a function already declared with `@job` (every domain
  job's `.task`) is a view of that declaration: same queue, same policy, same function.
- `.enqueue()` / `.aenqueue()` go through `enqueueing.submit`, the path of `.delay()`: outbox row in
  the caller's transaction, push after commit (after the response in a request, sync or async),
  the reconciler when Redis is away, the workers' refusals, the signature of the jobs it writes.
- `run_after` is `.delay_at()`. `priority` > 0 pushes the job at the front of its queue (RQ has no
  priorities): ahead of every job waiting there, and of earlier priority jobs (one request's jobs,
  sent together, keep their order among themselves); priority <= 0 is the queue's order (the
  back). The value beyond its sign is not used. A deferred job or a retry goes to the back when
  due, whatever its priority; a job the reconciler sends again goes to the front, like every job
  Redis lost.
- `queue_name` must name a declared queue (and, if `QUEUES` is set, one of them), and the queue
  of the function's declaration: `InvalidTaskError` otherwise.
- `takes_context=True`: the function gets a `TaskContext` first; `context.attempt` is 1 on the
  first run, counting each failure retried and each death of a worker under it.
- `get_result(id)` answers from the outbox row and RQ's job (outcomes.py), after RQ's TTLs too
  (for as long as the row is kept, settings.QUEUEING_LEDGER_RETENTION_DAYS): READY (recorded, queued, deferred, or a
  retry waiting, with its attempts and errors), RUNNING, SUCCESSFUL, FAILED (a failure, a refusal,
  or an operator's cancel: `CancelledJobError`).

Not provided: django_tasks' task_started / task_finished signals in workers (the layer's logs and
metrics record every attempt), a return value once RQ's TTL is past for a job whose end the
reconciler recorded (the worker's own write was lost) or that returned more than 64 KiB.
docs/tasks.md; tests/test_tasks_api.py.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.core import checks
from django.utils import timezone
from django_tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import Task, TaskError
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
from django_tasks.signals import task_enqueued
from redis.exceptions import RedisError
from rq.job import Job, JobStatus

from . import catalog, outcomes
from . import errors as layer_errors
from .catalog import JobSpec, func_path
from .enqueueing import submit

logger = logging.getLogger(__name__)

Status = TaskResultStatus


class CancelledJobError(Exception):
    """The error a FAILED result carries when an operator cancelled, stopped or deleted the job."""


# The Task that declared each function (or the first view of a `@job` declaration), by path.
_tasks: dict[str, Task[Any, Any]] = {}


class OutboxTaskBackend(BaseTaskBackend):
    supports_defer = True
    supports_async_task = True  # RQ runs a coroutine function's coroutine to its end
    supports_get_result = True
    supports_priority = True  # > 0: the front of its queue (module docstring)

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        configured = params.get("QUEUES")
        self._configured_queues = None if configured is None else set(configured)

    @property
    def queues(self) -> set[str]:
        """The declared queues (those of them named in QUEUES, if set): read from the catalog."""
        declared = set(catalog.queues())
        return declared if self._configured_queues is None else declared & self._configured_queues

    @queues.setter
    def queues(self, _value: Iterable[str]) -> None:
        pass  # BaseTaskBackend.__init__ sets its own reading of QUEUES; ours is the property above

    def validate_task(self, task: Task[Any, Any]) -> None:
        if task.queue_name not in self.queues:
            raise InvalidTaskError(
                f"{func_path(task.func)}: queue {task.queue_name!r} is not a declared queue "
                f"(declared: {', '.join(sorted(self.queues)) or 'none'}); declare it with declare_queue()"
            )
        super().validate_task(task)
        if "." in task.func.__qualname__:
            raise InvalidTaskError("Task function must be defined at a module level.")
        _declare(task)

    def enqueue(self, task: Task[Any, Any], args: Any, kwargs: Any) -> TaskResult[Any]:
        # The Task was validated (and declared) when it was made: a Task is immutable.
        spec = catalog.spec_for(func_path(task.func))
        call_args, call_kwargs = list(args), dict(kwargs)
        owner_id = spec.owner_of(call_args, call_kwargs, catalog.declared_function(spec.path))
        job = submit(spec, call_args, call_kwargs, owner_id=owner_id, due_at=task.run_after, at_front=task.priority > 0)
        result: TaskResult[Any] = TaskResult(
            task=task, id=job.id, status=Status.READY, enqueued_at=timezone.now(), started_at=None, finished_at=None,
            last_attempted_at=None, args=call_args, kwargs=call_kwargs, backend=self.alias, errors=[], worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any]:
        from .models import BackgroundJob

        row = BackgroundJob.objects.filter(pk=result_id).first()
        if row is None:
            raise TaskResultDoesNotExist(result_id)
        try:
            task = task_for(row.func)
        except (layer_errors.UndeclaredJobError, InvalidTaskError) as exc:
            raise TaskResultDoesNotExist(f"{result_id}: {exc}") from None
        return _answer(self.alias, task, row, _redis_job(result_id))

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        unknown = sorted((self._configured_queues or set()) - set(catalog.queues()))
        if unknown:
            yield checks.Error(
                f"TASKS[{self.alias!r}]['QUEUES'] names queues that are not declared: {', '.join(unknown)}",
                id="queueing.E101",
            )


def task_for(path: str) -> Task[Any, Any]:
    """The standard Task of a declared function: the one that declared it, or a view of its `@job`."""
    found = _tasks.get(path)
    if found is None:
        spec = catalog.spec_for(path)  # refuses the undeclared
        alias = backend_alias()
        backend = task_backends[alias]
        # Validating it (in Task.__post_init__) records it in _tasks.
        found = backend.task_class(func=catalog.declared_function(path), queue_name=spec.queue_name, backend=alias)
    return found


def backend_alias() -> str:
    """The TASKS alias configured with this backend."""
    from django.utils.module_loading import import_string

    for alias, config in task_backends.settings.items():
        backend = import_string(config["BACKEND"])
        if isinstance(backend, type) and issubclass(backend, OutboxTaskBackend):
            return str(alias)
    raise InvalidTaskError("no TASKS backend is app.queueing.tasks_backend.OutboxTaskBackend")


# -- declaration --------------------------------------------------------------------------------


def _declare(task: Task[Any, Any]) -> None:
    path = func_path(task.func)
    if not catalog.is_declared(path):
        queue = catalog.queue(task.queue_name)
        spec = JobSpec(
            path=path, queue=queue, timeout=queue.timeout, result_ttl=queue.result_ttl, failure_ttl=queue.failure_ttl,
            retries=queue.retries,
        )
        catalog.register_job(spec, _runner(task))
        _tasks[path] = task
        return
    spec = catalog.spec_for(path)
    if spec.queue_name != task.queue_name:
        raise InvalidTaskError(
            f"{path} is declared on queue {spec.queue_name!r}: its tasks run there (one declaration, one policy), "
            f"not on {task.queue_name!r}"
        )
    declared = _tasks.get(path)
    if declared is None:  # declared with @job: this Task is a view of that declaration
        if catalog.declared_function(path) is not task.func:
            raise InvalidTaskError(f"{path} is declared with another function of that name")
        if task.takes_context:
            raise InvalidTaskError(f"{path} is declared with @job: it takes no context")
        _tasks[path] = task
    elif declared.func is not task.func or declared.takes_context != task.takes_context:
        raise InvalidTaskError(f"{path} is already declared as a task with another function or takes_context")


def _runner(task: Task[Any, Any]) -> Callable[..., Any]:
    """What the workers call: the function itself, or, with takes_context, the function given its context."""
    func = task.func
    if not task.takes_context:
        return func

    @functools.wraps(func)
    def run_with_context(*args: Any, **kwargs: Any) -> Any:
        return func(TaskContext(task_result=_current_result(task, args, kwargs)), *args, **kwargs)

    signature = inspect.signature(func)
    # The caller's view (checked at enqueue): the parameters after `context`.
    run_with_context.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])  # type: ignore[attr-defined]
    return run_with_context


def _current_result(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskResult[Any]:
    from rq import get_current_job

    job = get_current_job()
    if job is None:  # called here and now, not by a worker
        return TaskResult(
            task=task, id="", status=Status.RUNNING, enqueued_at=None, started_at=timezone.now(), finished_at=None,
            last_attempted_at=timezone.now(), args=list(args), kwargs=dict(kwargs), backend=task.backend, errors=[],
            worker_ids=["local"],
        )
    return TaskResult(
        task=task, id=job.id, status=Status.RUNNING, enqueued_at=job.enqueued_at, started_at=job.started_at, finished_at=None,
        last_attempted_at=job.started_at, args=list(args), kwargs=dict(kwargs), backend=task.backend,
        errors=[_error(e) for e in outcomes.errors_of(job)], worker_ids=outcomes.worker_ids(job, running_or_succeeded=True),
    )


# -- results ------------------------------------------------------------------------------------

_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.CREATED}


def _redis_job(job_id: str) -> Job | None:
    from rq.exceptions import NoSuchJobError

    from .connections import redis_connection
    from .jobclass import QueueingJob

    try:
        return QueueingJob.fetch(job_id, connection=redis_connection())
    except NoSuchJobError:
        return None  # past its TTL, lost, or not sent yet: the row answers
    except RedisError:
        logger.warning("Redis unavailable while reading task result %s; answering from the database", job_id)
        return None
    except Exception:  # a hash that does not read as a job (corrupt, foreign): the row answers
        logger.warning("task result %s: its job in Redis could not be read; answering from the database", job_id)
        return None


def _answer(alias: str, task: Task[Any, Any], row: Any, job: Job | None) -> TaskResult[Any]:
    State = type(row).State
    status = job.get_status(refresh=False) if job is not None else None
    fields: dict[str, Any] = {"started_at": None, "finished_at": None, "last_attempted_at": None, "errors": [], "worker_ids": []}
    value: Any = None
    if row.state == State.CANCELLED:
        result_status = Status.FAILED
        fields.update(finished_at=row.ended_at, errors=[TaskError(exception_class_path=_path(CancelledJobError), traceback=row.failure_reason)])
        if job is not None:
            fields.update(worker_ids=outcomes.worker_ids(job, running_or_succeeded=False), started_at=job.started_at, last_attempted_at=job.started_at)
    elif job is not None and status in _WAITING | {JobStatus.STARTED}:
        # Live: waiting (first time, a retry's backoff, a requeue after a worker's death) or running.
        running = status == JobStatus.STARTED
        result_status = Status.RUNNING if running else Status.READY
        fields.update(
            started_at=job.started_at, last_attempted_at=job.started_at,
            errors=[_error(e) for e in outcomes.errors_of(job)], worker_ids=outcomes.worker_ids(job, running_or_succeeded=running),
        )
    elif row.state != State.PENDING and row.outcome is not None:
        # Ended, as its worker recorded it: the answer that outlives RQ's TTLs.
        outcome = row.outcome
        result_status = Status.SUCCESSFUL if row.state == State.FINISHED else Status.FAILED
        errors = [_error(e) for e in outcome.get("errors") or []]
        if result_status == Status.FAILED and not errors:  # refused, or its work-horse died: no exception raised
            errors = [_error_from_reason(row.failure_reason)]
        started_at = _parse_time(outcome.get("started_at"))
        fields.update(
            started_at=started_at, last_attempted_at=started_at, finished_at=row.ended_at, errors=errors,
            worker_ids=list(outcome.get("workers") or []),
        )
        value = outcome.get("return_value")
    elif job is not None:
        # Ended in Redis, not (or not fully) in the row: its worker's write was lost.
        latest = job.latest_result()
        succeeded = status == JobStatus.FINISHED
        result_status = Status.SUCCESSFUL if succeeded else Status.FAILED
        errors = [_error(e) for e in outcomes.errors_of(job)]
        worker_ids = outcomes.worker_ids(job, running_or_succeeded=succeeded)
        if not succeeded:
            reason = latest.exc_string if latest is not None and latest.exc_string else row.failure_reason
            errors.append(_error_from_reason(reason or f"job {status}"))
            worker_ids.append((latest.worker_name if latest is not None else "") or outcomes.UNKNOWN_WORKER)
        fields.update(started_at=job.started_at, last_attempted_at=job.started_at, finished_at=job.ended_at, errors=errors, worker_ids=worker_ids)
        value = job.return_value() if succeeded else None
    elif row.state == State.PENDING:
        result_status = Status.READY  # recorded, not in Redis (not sent yet, or lost: the reconciler sends it)
    else:
        result_status = Status.SUCCESSFUL if row.state == State.FINISHED else Status.FAILED
        fields.update(finished_at=row.ended_at, worker_ids=[outcomes.UNKNOWN_WORKER])
        if result_status == Status.FAILED:
            fields.update(errors=[_error_from_reason(row.failure_reason)])
    result: TaskResult[Any] = TaskResult(
        task=task, id=row.id, status=result_status, enqueued_at=row.created_at, args=row.args, kwargs=row.kwargs, backend=alias,
        **fields,
    )
    if result_status == Status.SUCCESSFUL:
        object.__setattr__(result, "_return_value", value)
    return result


def _error(recorded: dict[str, Any]) -> TaskError:
    return TaskError(exception_class_path=_known_class(str(recorded.get("exception_class_path") or "")), traceback=str(recorded.get("traceback") or ""))


def _known_class(path: str) -> str:
    """`path` if it names an exception class of a module already loaded here, else Exception's.

    The path comes from Redis (the job's meta) or a row written from it: a stranger's text, and
    TaskError.exception_class imports what it names. Only what is loaded already may be named
    (tests/test_tasks_api.py: test_an_error_class_read_from_redis_imports_nothing)."""
    import sys

    module_name, _, qualname = path.rpartition(".")
    found: Any = sys.modules.get(module_name) if module_name else None
    for part in qualname.split(".") if found is not None else []:
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, BaseException) and "." not in qualname:
        return path
    return _path(Exception)


def _error_from_reason(reason: str) -> TaskError:
    """A TaskError from a failure's text (RQ's traceback, or the row's reason: "ErrorClass: message")."""
    lines = [line for line in (reason or "").strip().splitlines() if line.strip()]
    head = lines[-1].split(":", 1)[0].strip() if lines else ""
    if head and "." not in head:
        if isinstance(getattr(builtins, head, None), type):
            head = f"builtins.{head}"
        elif isinstance(getattr(layer_errors, head, None), type):
            head = f"{layer_errors.__name__}.{head}"
    return TaskError(exception_class_path=_known_class(head), traceback=reason or "")


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None
