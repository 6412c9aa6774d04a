"""Least privilege in Redis: each role's ACL user (deploy/redis/roles.acl) does its work against a
real redis-server started by the compose entrypoint, and is refused every dangerous command, every
other role's powers and every key outside its patterns.

Each role's work runs the project's own code with that role's credentials only: the web's enqueue
(the outbox's Lua push), job status, cache and throttles and django-rq's actions; a worker draining
the queue (successes, a failure, a retry); a scheduler pass (schedules, sweeps, retries, the outbox);
rq-dashboard's pages and actions; /metrics' reads. Any NOPERM fails the test."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import django_rq
import pytest
import redis
from django.core.cache.backends.redis import RedisCache

from .redis_acl import ROLES, acl_redis_server, new_passwords, role_rules, user

FORBIDDEN = [
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("KEYS", "*"),
    ("SWAPDB", "0", "1"),
    ("RESTORE", "rq:queue:emails", "0", "\x00"),
    ("MIGRATE", "127.0.0.1", "1", "rq:queue:emails", "0", "1000"),
    ("DUMP", "rq:queue:emails"),
    ("CONFIG", "SET", "dir", "/tmp"),
    ("CONFIG", "GET", "*"),
    ("MODULE", "LIST"),
    ("DEBUG", "SLEEP", "0"),
    ("ACL", "SETUSER", "intruder", "on", ">x", "+@all", "~*"),
    ("SHUTDOWN", "NOSAVE"),
    ("REPLICAOF", "127.0.0.1", "1"),
    ("CLIENT", "KILL", "TYPE", "normal"),
    ("SCAN", "0"),
    ("SCRIPT", "FLUSH"),
    ("OBJECT", "ENCODING", "rq:queue:emails"),
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    passwords = new_passwords()
    # DEBUG and MODULE open on the server, so that the ACL is what refuses them (not the config).
    with acl_redis_server(tmp_path, passwords, "--enable-debug-command", "yes", "--enable-module-command", "yes") as port:
        yield port, passwords


def role_url(server: tuple[int, dict[str, str]], role: str, db: int = 2) -> str:
    port, passwords = server
    return f"redis://{user(role)}:{passwords[role]}@127.0.0.1:{port}/{db}"


@pytest.fixture
def as_role(server, settings) -> Iterator:  # type: ignore[no-untyped-def,type-arg]
    """Point the app's queue connection (and throttles) at the ACL server as `role`; returns a client as that role."""
    saved = settings.RQ_QUEUES.connection["URL"]

    def switch(role: str) -> redis.Redis:
        url = role_url(server, role)
        settings.RQ_QUEUES.connection["URL"] = url
        settings.RQ_QUEUES_URL = url
        settings.THROTTLE_REDIS_URL = role_url(server, role, db=1)
        return redis.Redis.from_url(url)

    yield switch
    settings.RQ_QUEUES.connection["URL"] = saved


def no_redis_errors(caplog: pytest.LogCaptureFixture) -> None:
    """The scheduler and the workers log a RedisError and go on: a NOPERM must not hide there."""
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING and ("NOPERM" in r.getMessage() or (r.exc_text or "").find("NOPERM") >= 0 or "permission" in r.getMessage().lower())]
    assert not errors, [r.getMessage() for r in errors]


def test_every_role_has_its_own_user_and_none_may_use_a_dangerous_command(server):
    assert set(role_rules()) == set(ROLES)
    for role in ROLES:
        client = redis.Redis.from_url(role_url(server, role))
        assert client.client_info()["user"] == user(role)
        for command in FORBIDDEN:
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)


def test_no_role_reaches_keys_outside_its_patterns_even_through_lua(server):
    def refused(role: str, *command: str) -> None:
        with pytest.raises(redis.exceptions.ResponseError, match="(?i)noperm|permission|can't run this command"):
            redis.Redis.from_url(role_url(server, role)).execute_command(*command)

    for role in ROLES:
        refused(role, "GET", "someone-else:secret")
    refused("worker", "LPUSH", "LIMITS:LIMITER/egoejo-throttle/x", "1")  # the login throttles are the web's
    refused("scheduler", "DEL", "LIMITS:LIMITER/egoejo-throttle/x")
    refused("dashboard", "GET", "egoejo:jobstats:funcs")  # RQ's keys only
    refused("metrics", "HSET", "rq:job:x", "status", "finished")  # reads only
    refused("metrics", "DEL", "rq:queue:emails")
    # A script runs with its caller's permissions (Redis 7): no way around the lists above.
    refused("web", "EVAL", "return redis.call('FLUSHDB')", "0")
    refused("web", "EVAL", "return redis.call('GET', KEYS[1])", "1", "someone-else:secret")
    refused("worker", "EVAL", "return redis.call('KEYS', '*')", "0")
    # Scripting only where the project runs Lua; publishing (operator commands to workers) only from the web.
    refused("metrics", "EVAL", "return 1", "0")
    refused("dashboard", "EVAL", "return 1", "0")
    refused("dashboard", "PUBLISH", "rq:pubsub:w", "{}")
    refused("scheduler", "PUBLISH", "rq:pubsub:w", "{}")
    refused("web", "PUBLISH", "other-channel", "x")
    refused("web", "BLPOP", "rq:queue:emails", "1")  # dequeuing is the workers'


def test_an_anonymous_or_wrong_password_client_is_refused(server):
    port, passwords = server
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, password="anything").ping()
    with pytest.raises(redis.AuthenticationError):  # one role's password opens no other role
        redis.Redis(port=port, username=user("web"), password=passwords["worker"]).ping()


def test_each_role_does_its_own_work_with_its_own_credentials(
    server, as_role, transactional_db, admin_client, django_capture_on_commit_callbacks, caplog, settings
):
    from app.jobs import emails
    from app.queueing import job_reports as status
    from app.queueing.monitoring import JobStatsCollector
    from app.queueing.scheduling import ProjectScheduler
    from app.queueing.workers import InProcessWorker
    from app.services import throttling
    from tests.fixtures import fail_permanently, fail_transiently, say_hello

    caplog.set_level(logging.WARNING)
    # web: enqueue (the outbox's Lua push), job status, the Django cache, the login throttles.
    web = as_role("web")
    with django_capture_on_commit_callbacks(execute=True):
        hello = say_hello.with_options(owner_id=1).delay("roles")
        fail_permanently.delay("bad")
        fail_transiently.delay("later")
        welcome = emails.send_welcome_email.delay(999_999)  # no such member: skipped
    assert web.llen("rq:queue:metrics") == 3 and web.llen("rq:queue:emails") == 1
    assert status.status_for_owner(hello.id, 1) is not None
    cache = RedisCache(role_url(server, "web", db=1), {"KEY_PREFIX": "egoejo"})
    cache.set("k", "v", 30)
    assert cache.get("k") == "v" and cache.incr("n", 1) if cache.add("n", 0) else True
    cache.delete("k")
    budget = throttling.budget("THROTTLE_LOGIN_FAILURES_PER_ACCOUNT")
    assert throttling.limiter().hit(budget.rate, "egoejo-throttle", budget.name, "ana")
    throttling.limiter().clear(budget.rate, "egoejo-throttle", budget.name, "ana")

    # worker: drain both queues (a success, a skip, a permanent failure, a retry scheduled).
    worker = as_role("worker")
    queues = [django_rq.get_queue("metrics"), django_rq.get_queue("emails")]
    InProcessWorker(queues, connection=worker).work(burst=True, with_scheduler=False)
    assert django_rq.get_queue("metrics").fetch_job(hello.id).get_status() == "finished"
    assert worker.zcard("rq:failed:metrics") == 1 and worker.zcard("rq:scheduled:metrics") == 1
    assert django_rq.get_queue("emails").fetch_job(welcome.id).get_status() == "finished"

    # scheduler: a whole pass (schedules, due retries, sweeps, outbox reconciliation and purge).
    scheduler_conn = as_role("scheduler")
    scheduler = ProjectScheduler(queue_name="metrics", interval=1, connection=scheduler_conn)
    assert scheduler.acquire_lock()
    scheduler.heartbeat()
    scheduler.enqueue_jobs()
    scheduler.remove_lock()
    assert scheduler_conn.zcard("rq:scheduler:scheduled_jobs") >= 1
    no_redis_errors(caplog)

    # metrics: every series of /metrics, read-only.
    metrics = as_role("metrics")
    families = {family.name for family in JobStatsCollector(metrics).collect()}
    assert "egoejo_job_outcomes" in families or "egoejo_job_outcomes_total" in families, families

    # web again: django-rq's pages and an operator's actions on them.
    as_role("web")
    assert admin_client.get("/admin/django-rq/").status_code == 200
    [failed_id] = django_rq.get_queue("metrics").failed_job_registry.get_job_ids()
    index = list(settings.RQ_QUEUES).index("metrics")
    assert admin_client.get(f"/admin/django-rq/queues/{index}/failed/").status_code == 200
    assert admin_client.post(f"/admin/django-rq/queues/{index}/{failed_id}/requeue/", {"requeue": "Requeue"}).status_code == 302
    assert web.llen("rq:queue:metrics") == 1

    # dashboard: rq-dashboard's pages and its actions (delete, requeue, empty), as egoejo-dashboard.
    from app.queueing.dashboard import create_app

    as_role("dashboard")
    client = create_app(role_url(server, "dashboard"), "operator", "s3cret").test_client()
    auth = {"Authorization": "Basic " + base64.b64encode(b"operator:s3cret").decode(), "Origin": "http://localhost"}
    for path in ("/", "/0/data/queues.json", "/0/data/workers.json", "/0/view/recurring",
                 "/0/data/jobs/metrics/queued/8/asc/1.json", "/0/data/jobs/metrics/scheduled/8/asc/1.json"):
        assert client.get(path, headers=auth).status_code == 200, path
    worker = as_role("worker")
    InProcessWorker([django_rq.get_queue("metrics")], connection=worker).work(burst=True, with_scheduler=False)
    as_role("dashboard")
    [failed_id] = django_rq.get_queue("metrics").failed_job_registry.get_job_ids()
    assert client.post(f"/job/{failed_id}/requeue", headers=auth).status_code == 200
    assert client.post("/queue/metrics/queued/empty", headers=auth).status_code == 200
    assert client.post("/queue/metrics/scheduled/empty", headers=auth).status_code == 200
    assert web.llen("rq:queue:metrics") == 0
    no_redis_errors(caplog)


def test_refusals_are_recorded_with_each_roles_own_credentials(server, as_role, transactional_db, caplog):
    """A job or a schedule the layer did not make is failed, with its reason, by the role that finds it."""
    from datetime import datetime

    from rq import Queue
    from rq.serializers import JSONSerializer
    from rq_scheduler import Scheduler

    from app.queueing import keys
    from app.queueing.jobclass import QueueingJob
    from app.queueing.scheduling import ProjectScheduler
    from app.queueing.workers import InProcessWorker

    caplog.set_level(logging.WARNING)
    port, passwords = server
    intruder = redis.Redis.from_url(role_url(server, "web"))  # any role that may write jobs
    forged = Queue("emails", connection=intruder, serializer=JSONSerializer).enqueue_call(
        "app.jobs.emails.send_email", args=["someone@outside.example", "Hi", "<p>x</p>"]
    )
    schedule = Scheduler(queue_name="emails", connection=intruder, job_class=QueueingJob).enqueue_at(
        datetime(2000, 1, 1), "app.jobs.emails.send_email", "someone@outside.example", "Hi", "<p>x</p>"
    )
    worker = as_role("worker")
    InProcessWorker([django_rq.get_queue("emails")], connection=worker).work(burst=True, with_scheduler=False)
    scheduler = as_role("scheduler")
    ProjectScheduler(queue_name="emails", interval=1, connection=scheduler).enqueue_jobs()
    for job_id in (forged.id, schedule.id):
        assert QueueingJob.fetch(job_id, connection=worker).get_status() == "failed"
    assert int(worker.hget(keys.REFUSED, "emails")) == 2
    no_redis_errors(caplog)
