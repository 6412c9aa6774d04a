"""Every way into the queues gets the guarantees: declared jobs only, the declared queue, the
outbox row in the caller's transaction, the push after commit, the declared policy."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import django_rq
import pytest
from django.db import transaction
from rq.job import Job, JobStatus, Retry
from rq.serializers import JSONSerializer

from app.jobs import emails, images, metrics
from app.queueing import UndeclaredJobError, UnsupportedJobOption, dispatch, keys, outbox
from app.queueing import catalog as registry
from app.queueing.models import BackgroundJob
from tests import fixtures
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def queued(name: str) -> list[str]:
    return django_rq.get_queue(name).get_job_ids()


def row(job_id: str) -> BackgroundJob:
    return BackgroundJob.objects.get(pk=job_id)


def test_django_rq_enqueue_lands_on_the_declared_queue_after_commit_and_mails_once(smtp_sink, run_worker, django_capture_on_commit_callbacks):
    user = make_user("ana")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = django_rq.enqueue(emails.send_welcome_email, user.pk)
        assert queued("emails") == []  # not before the commit
        assert row(job.id).state == BackgroundJob.State.PENDING  # but recorded in this transaction
    assert len(callbacks) == 1
    assert job.origin == "emails"  # the handle names the queue, as RQ's returned job does
    assert queued("emails") == [job.id]
    assert django_rq.get_queue("default").get_job_ids() == []  # django-rq's default: nothing there
    assert row(job.id).owner_id == user.pk  # declared owner="user_id"
    run_worker("emails")
    assert len(smtp_sink.wait_for(1)) == 1
    assert row(job.id).state == BackgroundJob.State.FINISHED


def test_delay_with_keyword_arguments_reads_as_in_the_card(run_worker, django_capture_on_commit_callbacks, smtp_sink):
    user = make_user("bea")
    with django_capture_on_commit_callbacks(execute=True):
        welcome = emails.send_welcome_email.delay(user_id=user.pk)
        image = images.process_image.delay(image_path="uploads/originals/x.jpg", max_width=1920, max_height=1080, quality=85)
    assert queued("emails") == [welcome.id] and queued("images") == [image.id]
    fetched = Job.fetch(image.id, connection=django_rq.get_queue("images").connection, serializer=JSONSerializer)
    assert fetched.kwargs == {"image_path": "uploads/originals/x.jpg", "max_width": 1920, "max_height": 1080, "quality": 85}
    assert fetched.timeout == 300 and fetched.retries_left == 3  # the declared policy
    run_worker("emails")
    assert len(smtp_sink.wait_for(1)) == 1


def test_calling_a_declared_job_runs_it_in_the_caller():
    assert metrics.refresh_all_dashboards() == {"refreshed": 0}
    assert emails.send_welcome_email(987654) == {"user_id": 987654, "sent": False}


def test_a_named_queue_or_djangos_job_decorator_routes_to_the_declared_queue(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        on_images = django_rq.get_queue("images").enqueue(emails.send_email, "a@example.org", "Hi", "<p>x</p>")
        decorated = django_rq.job("default")(emails.send_email.func)
        via_decorator = decorated.delay("b@example.org", "Hi", "<p>y</p>")
    assert queued("images") == []
    assert queued("emails") == [on_images.id, via_decorator.id]


def test_bulk_through_django_rq_and_delay_many(django_capture_on_commit_callbacks):
    from rq import Queue

    with django_capture_on_commit_callbacks(execute=True):
        ids = emails.send_bulk_email.delay_many([("announcement", [1, 2]), ("announcement", [3])])
        jobs = django_rq.get_queue("emails").enqueue_many(
            [Queue.prepare_data(emails.send_email, args=["c@example.org", "Hi", "<p>z</p>"])]
        )
    assert queued("emails") == ids + [jobs[0].id]
    assert {r.state for r in BackgroundJob.objects.all()} == {BackgroundJob.State.PENDING}


@pytest.mark.parametrize("target", [os.system, "os.system", "subprocess.run", "tests.fixtures.not_declared", "app.services.accounts.register"])
def test_an_undeclared_function_is_refused_at_enqueue_on_every_path(target, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for attempt in (
            lambda: django_rq.enqueue(target, "touch /tmp/pwned"),
            lambda: django_rq.get_queue("emails").enqueue(target, "x"),
            lambda: django_rq.get_queue("emails").enqueue_in(timedelta(seconds=5), target, "x"),
            lambda: django_rq.get_queue("emails").enqueue_at(datetime.now(UTC), target, "x"),
            lambda: django_rq.job("emails")(fixtures.not_declared).delay("x"),
        ):
            with pytest.raises(UndeclaredJobError, match="not a declared job"):
                attempt()
    assert BackgroundJob.objects.count() == 0
    assert all(queued(name) == [] for name in registry.queues())


def test_policy_belongs_to_the_declaration_and_bad_calls_fail_in_the_caller():
    queue = django_rq.get_queue("emails")
    with pytest.raises(UnsupportedJobOption, match="declared with the job"):
        queue.enqueue(emails.send_email, "a@example.org", "Hi", "<p>x</p>", job_timeout=5)
    with pytest.raises(UnsupportedJobOption, match="depends_on"):
        queue.enqueue(emails.send_email, "a@example.org", "Hi", "<p>x</p>", depends_on="other")
    with pytest.raises(TypeError, match="send_welcome_email"):
        emails.send_welcome_email.delay(1, 2)  # too many arguments: refused here, not in a worker
    with pytest.raises(TypeError, match="JSON values"):
        emails.send_welcome_email.delay(make_user("carl"))  # a model instance, not an id
    assert BackgroundJob.objects.count() == 0


def test_a_rolled_back_transaction_enqueues_nothing(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                emails.send_welcome_email.delay(1)
                django_rq.enqueue(metrics.refresh_all_dashboards)
                raise RuntimeError("rolled back")
    assert BackgroundJob.objects.count() == 0 and queued("emails") == [] and queued("metrics") == []


def test_delayed_jobs_are_scheduled_and_come_back_for_their_due_time_after_redis_lost_them(redis_conn, django_capture_on_commit_callbacks):
    due = datetime.now(UTC) + timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        later = emails.send_welcome_email.delay_at(due, 5)
        soon = django_rq.get_queue("metrics").enqueue_in(timedelta(minutes=5), metrics.refresh_all_dashboards)
    registry_ids = lambda name: [m.decode() for m in redis_conn.zrange(f"rq:scheduled:{name}", 0, -1)]  # noqa: E731
    assert registry_ids("emails") == [later.id] and registry_ids("metrics") == [soon.id]
    assert queued("emails") == [] and row(later.id).due_at == due
    score = redis_conn.zscore("rq:scheduled:emails", later.id)
    redis_conn.flushdb()  # Redis loses everything
    counts = outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=0)
    assert counts["resent"] == 2
    assert registry_ids("emails") == [later.id] and redis_conn.zscore("rq:scheduled:emails", later.id) == score
    assert queued("emails") == []  # still waiting for its due time


def test_a_job_pushed_twice_is_queued_and_run_once(redis_conn, run_worker, smtp_sink, django_capture_on_commit_callbacks):
    """A request slower than the reconciler's age: the reconciler sends the committed row, then the
    request's own push comes; a conditional push leaves one copy, and the worker runs it once."""
    user = make_user("dora")
    dispatch.on_request_started()
    with django_capture_on_commit_callbacks(execute=True):
        job = emails.send_welcome_email.delay(user.pk)
    assert outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=0)["resent"] == 1  # the slow request's row
    dispatch.on_request_finished()  # the request's own push, after its response
    assert queued("emails") == [job.id]
    redis_conn.rpush("rq:queue:emails", job.id)  # even a duplicate id in the list ...
    run_worker("emails")
    assert len(smtp_sink.wait_for(1)) == 1
    assert len(smtp_sink.messages) == 1  # ... runs once: the second pop sees it finished
    assert Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer).get_status() == JobStatus.FINISHED


@pytest.mark.parametrize("web_clock", [timedelta(hours=-1), timedelta(hours=1)])
def test_row_ages_are_read_on_the_databases_clock(web_clock, redis_conn, monkeypatch, django_capture_on_commit_callbacks):
    """A web host whose clock is behind made a fresh row look old to the scheduler, which sent it
    before the request's own push (a job pushed twice); one ahead hid lost rows. Ages come from
    the database's clock alone, whatever the hosts' clocks say."""
    from django.utils import timezone

    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + web_clock)  # the web and the scheduler, skewed
    with django_capture_on_commit_callbacks(execute=False):  # committed, the request's push still to come
        job_id = metrics.update_impact_dashboard_metrics.delay(1).id
    assert outbox.reconcile(redis_conn, missing_after=0)["resent"] == 0  # MIN_AGE old on no clock yet
    BackgroundJob.objects.filter(pk=job_id).update(created_at=row(job_id).created_at - outbox.MIN_AGE - timedelta(seconds=1))
    assert outbox.reconcile(redis_conn, missing_after=0)["resent"] == 1  # past the age: lost, sent
    assert queued("metrics") == [job_id]


def test_an_operators_delete_or_cancel_is_final(redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        deleted = emails.send_welcome_email.delay(1)
        cancelled = emails.send_welcome_email.delay(2)
        emptied = metrics.update_impact_dashboard_metrics.delay(3)
    queue = django_rq.get_queue("emails")
    queue.fetch_job(deleted.id).delete()  # rq's API through JOB_CLASS, as failedjobs --delete (the admin's pages: test_django_rq_pages.py)
    queue.fetch_job(cancelled.id).cancel()
    django_rq.get_queue("metrics").empty()  # django-rq's "empty queue"
    for job in (deleted, cancelled, emptied):
        assert row(job.id).state == BackgroundJob.State.CANCELLED
    redis_conn.flushdb()
    assert outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=0)["resent"] == 0
    assert queued("emails") == [] and queued("metrics") == []


def test_a_lost_job_is_re_sent_on_its_second_sighting_unless_a_worker_still_runs_it(redis_conn, django_capture_on_commit_callbacks):
    """A flush while a job runs takes its hash: re-sending it at the first sighting would run a
    second copy beside the first. The running worker claims it again
    within a liveness beat; the reconciler waits for a second sighting and leaves claimed jobs."""
    from app.queueing.keys import running as running_key

    with django_capture_on_commit_callbacks(execute=True):
        running, lost = metrics.update_impact_dashboard_metrics.delay_many([[1], [2]])
    redis_conn.flushdb()
    assert outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=1)["resent"] == 0  # first sighting
    redis_conn.set(running_key(running), "worker-a", ex=12)  # its worker's next beat
    time.sleep(2.1)
    assert outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=1)["resent"] == 1
    assert queued("metrics") == [lost]
    assert not redis_conn.exists(f"rq:job:{running}") and row(running).state == BackgroundJob.State.PENDING


def test_jobs_redis_lost_go_back_ahead_of_what_was_enqueued_since_oldest_first(redis_conn, django_capture_on_commit_callbacks):
    """Sent again at the back, a job lost with Redis's data would wait behind everything enqueued
    during the outage and its detection. It goes back to the front, as the sweeps' requeues do, the oldest first."""
    with django_capture_on_commit_callbacks(execute=True):
        lost = metrics.update_impact_dashboard_metrics.delay_many([[1], [2], [3]])
    oldest_first = sorted(lost)[::-1]  # not the page's id order
    for age, job_id in zip((30, 20, 10), oldest_first, strict=True):
        BackgroundJob.objects.filter(pk=job_id).update(created_at=datetime.now(UTC) - timedelta(seconds=age))
    redis_conn.flushdb()
    with django_capture_on_commit_callbacks(execute=True):
        since = metrics.update_impact_dashboard_metrics.delay(4)
    assert queued("metrics") == [since.id]
    assert outbox.reconcile(redis_conn, min_age=timedelta(seconds=5), missing_after=0)["resent"] == 3
    assert queued("metrics") == [*oldest_first, since.id]


@pytest.mark.parametrize("status", ["started", "scheduled"])
def test_a_job_that_says_started_or_scheduled_while_nothing_holds_it_is_requeued_and_runs_once(
    status, redis_conn, run_worker, django_capture_on_commit_callbacks
):
    """A job whose hash says it runs (or waits for its retry) while no registry, list or worker
    holds it, because a Redis restart or a killed sweeper cut off the step that moves it, would
    stay pending forever. The reconciler requeues it on its second sighting;
    one that a registry or a running worker still holds stays where it is."""
    from app.queueing.keys import running as running_key

    with django_capture_on_commit_callbacks(execute=True):
        in_registry, claimed, unheld = metrics.update_impact_dashboard_metrics.delay_many([[1], [2], [3]])
    for job_id in (in_registry, claimed, unheld):
        redis_conn.lrem("rq:queue:metrics", 0, job_id)
        redis_conn.hset(f"rq:job:{job_id}", "status", status)
    if status == "started":
        redis_conn.zadd("rq:wip:metrics", {f"{in_registry}:run1": time.time() + 60})
    else:
        redis_conn.zadd("rq:scheduled:metrics", {in_registry: time.time() + 60})
    redis_conn.set(running_key(claimed), "worker-a", ex=12)

    assert outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=1)["requeued"] == 0  # first sighting
    time.sleep(1.1)
    assert outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=1)["requeued"] == 1
    assert queued("metrics") == [unheld]
    time.sleep(1.1)
    assert outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=1)["requeued"] == 0  # waiting now: held
    assert queued("metrics") == [unheld]
    assert redis_conn.hget(f"rq:job:{unheld}", "status") == b"queued"
    assert redis_conn.hget(f"rq:job:{claimed}", "status") == redis_conn.hget(f"rq:job:{in_registry}", "status") == status.encode()
    run_worker("metrics")
    assert row(unheld).state == BackgroundJob.State.FINISHED


def test_a_partial_hash_that_nothing_holds_is_re_sent_from_its_row_and_breaks_no_pass(redis_conn, run_worker, django_capture_on_commit_callbacks):
    """A worker's late write after Redis lost a job (a flush between its pop and its start) can
    leave a hash with a status and no data. RQ cannot read it: the pass broke there, and the rows
    after it (a lost one here) were never sent. Now the partial hash is dropped and the job sent
    again from its row, and the rest of the page goes on."""
    with django_capture_on_commit_callbacks(execute=True):
        partial, lost = metrics.update_impact_dashboard_metrics.delay_many([[1], [2]])
    redis_conn.delete(f"rq:job:{partial}", f"rq:job:{lost}", "rq:queue:metrics")
    redis_conn.hset(f"rq:job:{partial}", "status", "started")
    for _ in range(2):
        outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=1)
        time.sleep(1.1)
    assert sorted(queued("metrics")) == sorted([partial, lost])
    run_worker("metrics")
    assert row(partial).state == row(lost).state == BackgroundJob.State.FINISHED


def test_a_queued_job_in_no_queue_is_pushed_again_once(redis_conn, run_worker, django_capture_on_commit_callbacks, monkeypatch):
    """A failover lost a queue entry but not the hash: the reconciler pushes the job again on its
    second sighting. Its look and its push are one step: a job pushed by someone else between
    the two (a sweep, an operator's requeue) is not pushed a second time."""
    with django_capture_on_commit_callbacks(execute=True):
        lost, raced = metrics.update_impact_dashboard_metrics.delay_many([[1], [2]])
    redis_conn.delete("rq:queue:metrics")  # both entries gone, both hashes still say queued
    real_orphans = outbox.orphans

    def pushed_meanwhile(connection, jobs, **kwargs):  # type: ignore[no-untyped-def]
        found = real_orphans(connection, jobs, **kwargs)
        if raced in found:
            connection.rpush("rq:queue:metrics", raced)  # after the look, before the push
        return found

    monkeypatch.setattr(outbox, "orphans", pushed_meanwhile)
    assert outbox.reconcile(redis_conn, min_age=timedelta(0))["requeued"] == 0  # first sighting
    redis_conn.set(keys.stuck_seen("outbox", lost), 1, ex=1)  # as if first seen 59 s ago
    redis_conn.set(keys.stuck_seen("outbox", raced), 1, ex=1)
    assert outbox.reconcile(redis_conn, min_age=timedelta(0))["requeued"] == 1
    assert sorted(queued("metrics")) == sorted([lost, raced])  # each once
    run_worker("metrics")
    assert row(lost).state == row(raced).state == BackgroundJob.State.FINISHED


def test_the_orphan_check_reads_each_list_once_and_clears_healthy_sightings(redis_conn):
    """A page's queued jobs are looked up in one read of each list (in chunks), not one LPOS scan
    of the queue per job (a 100,000-job backlog: 0.7 s of Redis per pass, scripts/bench
    reconciler); a job found waiting, being handed over or running is healthy, its sighting gone."""
    from app.queueing import recovery, rq_compat

    waiting = [f"waiting-{i}" for i in range(recovery.LIST_CHUNK * 2 + 5)]  # three chunks
    redis_conn.rpush(rq_compat.queue_key("metrics"), *waiting)
    redis_conn.rpush(rq_compat.intermediate_key("metrics"), "handing-over")
    redis_conn.zadd(rq_compat.started_key("metrics"), {"running:exec1": time.time() + 60})
    jobs = [(job_id, "metrics") for job_id in (waiting[0], waiting[recovery.LIST_CHUNK + 7], waiting[-1], "handing-over", "running", "lost")]
    redis_conn.set(keys.stuck_seen("outbox", waiting[-1]), 1, ex=60)  # seen missing once, long ago
    commands = CommandCounter(redis_conn)
    assert recovery.orphans(redis_conn, jobs, after=1) == set()  # "lost": its first sighting
    assert commands.seen("LPOS") == 0 and commands.seen("LRANGE") == 3 + 1 and commands.seen("ZRANGE") == 1
    assert not redis_conn.exists(keys.stuck_seen("outbox", waiting[-1]))
    time.sleep(1.1)
    assert recovery.orphans(redis_conn, jobs, after=1) == {"lost"}


class CommandCounter:
    """Counts the commands this test's Redis client sends (its own pipeline-free calls)."""

    def __init__(self, connection) -> None:  # type: ignore[no-untyped-def]
        self.names: list[str] = []
        real = connection.execute_command

        def counting(*args, **options):  # type: ignore[no-untyped-def]
            self.names.append(str(args[0]).upper())
            return real(*args, **options)

        connection.execute_command = counting

    def seen(self, name: str) -> int:
        return self.names.count(name)


def test_a_job_cancelled_while_the_reconciler_looks_is_not_requeued(redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = metrics.update_impact_dashboard_metrics.delay(1).id
    redis_conn.lrem("rq:queue:metrics", 0, job_id)
    redis_conn.hset(f"rq:job:{job_id}", "status", "canceled")  # the pass read "started"; an operator cancelled since
    assert outbox._requeue_unheld(redis_conn, "metrics", job_id, "started") == "changed"
    assert queued("metrics") == [] and redis_conn.hget(f"rq:job:{job_id}", "status") == b"canceled"


def test_a_failure_the_worker_could_not_record_is_closed_with_its_reason(redis_conn, django_capture_on_commit_callbacks):
    """The worker failed the job (SMTP 550) but its write of the row failed (the database was
    restarting): the reconciler closes the row from Redis, with the reason the worker would have
    written, not a pointer to the failed registry."""
    from rq.results import Result

    with django_capture_on_commit_callbacks(execute=True):
        job_id = emails.send_welcome_email.delay(7).id
    job = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
    refusal = "SMTPRecipientsRefused: {'m@example.org': (550, b'5.1.1 No such mailbox')}"
    Result.create_failure(job, 600, f"Traceback (most recent call last):\n  ...\n{refusal}\n", worker_name="w1")
    job.set_status(JobStatus.FAILED)
    outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=0)
    assert (row(job_id).state, row(job_id).failure_reason) == (BackgroundJob.State.FAILED, refusal)


def test_every_end_in_redis_closes_the_row_and_the_reconciler_pages_through_all_rows(redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ids = metrics.update_impact_dashboard_metrics.delay_many([[i] for i in range(7)])
    for job_id, status in zip(ids[:4], ("finished", "failed", "stopped", "canceled"), strict=True):
        redis_conn.hset(f"rq:job:{job_id}", "status", status)  # the worker's own write was missed
    redis_conn.delete(f"rq:job:{ids[4]}")  # lost
    seen = []
    for _ in range(4):  # 3 rows a pass: every row is seen within ceil(7 / 3) passes
        counts = outbox.reconcile(redis_conn, min_age=timedelta(0), page=3, missing_after=0)
        seen.append(counts["seen"])
    states = dict(BackgroundJob.objects.values_list("id", "state"))
    assert [states[job_id] for job_id in ids[:4]] == ["finished", "failed", "cancelled", "cancelled"]
    assert states[ids[4]] == "pending" and redis_conn.exists(f"rq:job:{ids[4]}")  # re-sent
    assert seen == [3, 3, 1, 3]  # then it starts over


def test_a_sweep_whose_zrem_another_sweep_won_does_not_requeue(redis_conn):
    """A sweep paused longer than its lock: the one that took over and the late one both see the
    abandoned job; only the one whose ZREM removed the entry requeues it. (The other sweep's ZREM
    is played into this one's: the real race of two sweeps is the next test.)"""
    from rq import Queue

    from app.queueing import recovery

    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    job = queue.enqueue("tests.fixtures.say_hello", "x")
    redis_conn.lrem("rq:queue:metrics", 0, job.id)
    job.set_status(JobStatus.STARTED)
    job.worker_name = "dead-worker"
    job.save()
    redis_conn.zadd("rq:wip:metrics", {f"{job.id}:exec1": 9999999999})
    real_zrem = redis_conn.zrem
    calls = []

    def racing_zrem(key, *members):  # type: ignore[no-untyped-def]
        if not calls:  # the other sweep removes the entry first, while this one is paused
            calls.append(real_zrem(key, *members))
        return real_zrem(key, *members)

    redis_conn.zrem = racing_zrem  # type: ignore[method-assign]
    assert recovery.sweep(redis_conn, ["metrics"]) == []  # its ZREM returned 0: not requeued
    redis_conn.zrem = real_zrem  # type: ignore[method-assign]
    assert redis_conn.lrange("rq:queue:metrics", 0, -1) == []


def test_two_sweeps_racing_requeue_an_abandoned_job_once(redis_conn):
    """Two real sweeps, each on its own connection and thread, started together (a barrier), over
    20 abandoned jobs one after another: each job is requeued once, whichever sweep wins."""
    import threading

    import redis as redis_lib
    from rq import Queue

    from app.queueing import recovery

    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    url = redis_conn.connection_pool.connection_kwargs
    connections = [redis_lib.Redis(host=url.get("host", "127.0.0.1"), port=url.get("port", 6379), db=url.get("db", 0)) for _ in range(2)]
    for round_ in range(20):
        job = queue.enqueue("tests.fixtures.say_hello", str(round_))
        redis_conn.lrem("rq:queue:metrics", 0, job.id)
        job.set_status(JobStatus.STARTED)
        job.worker_name = "dead-worker"
        job.save()
        redis_conn.zadd("rq:wip:metrics", {f"{job.id}:exec1": 9999999999})
        barrier = threading.Barrier(2)
        results: list[list[str]] = []

        def one_sweep(connection, barrier=barrier, results=results):  # type: ignore[no-untyped-def]
            barrier.wait()
            results.append(recovery.sweep(connection, ["metrics"]))

        threads = [threading.Thread(target=one_sweep, args=(c,)) for c in connections]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(len(r) for r in results) == [0, 1], results
        assert redis_conn.lrange("rq:queue:metrics", 0, -1) == [job.id.encode()]
        redis_conn.delete("rq:queue:metrics")


def test_the_sweep_lock_is_released_only_by_its_holder(redis_conn):
    from app.queueing import recovery

    with recovery._sweep_lock(redis_conn) as held:
        assert held
        redis_conn.set(keys.SWEEP_LOCK, "someone-else")  # ours expired; another sweep took it
    assert redis_conn.get(keys.SWEEP_LOCK) == b"someone-else"


def test_a_token_lock_extends_and_releases_only_while_it_holds_its_token(redis_conn):
    """locks.TokenLock, under the sweep's lock, rq-scheduler's lock and the impact refresh marker."""
    from app.queueing.locks import TokenLock

    mine = TokenLock(redis_conn, "test:lock", 30, token="mine")
    assert not mine.release() and not mine.extend()  # never held: nothing sent
    assert mine.acquire() and redis_conn.get("test:lock") == b"mine"
    assert not TokenLock(redis_conn, "test:lock", 30).acquire()  # held: a second holder waits
    theirs = TokenLock(redis_conn, "test:lock", 60, token="theirs")
    theirs.take_over()  # taken whoever holds it
    assert theirs and redis_conn.get("test:lock") == b"theirs"
    assert not mine.extend() and not mine.release()  # lost: left as it is
    assert redis_conn.get("test:lock") == b"theirs" and redis_conn.ttl("test:lock") > 30
    assert theirs.release() and not theirs and not redis_conn.exists("test:lock")
    with TokenLock(redis_conn, "test:lock", 30) as held:
        assert held and redis_conn.exists("test:lock")
    assert not redis_conn.exists("test:lock")


def test_a_sweeper_killed_holding_the_lock_holds_the_sweeps_up_5_s_at_most(redis_conn):
    """A scheduler killed mid-sweep leaves the lock behind, and no sweep requeues an abandoned
    job until it expires. Overlapping sweeps are safe (each acts only
    where its own ZREM removed the entry), so the lock is short."""
    from app.queueing import recovery

    with recovery._sweep_lock(redis_conn) as held:
        assert held and 0 < redis_conn.ttl(keys.SWEEP_LOCK) <= 5
        redis_conn.expire(keys.SWEEP_LOCK, 3)  # a slow sweep: its lock nearly out (3 s: room for a loaded machine) ...
        held.extend()  # ... renewed between two queues
        assert redis_conn.ttl(keys.SWEEP_LOCK) > 3
        redis_conn.set(keys.SWEEP_LOCK, "another-sweep", ex=2)
        held.extend()  # not ours any more: left as it is
        assert redis_conn.ttl(keys.SWEEP_LOCK) <= 2


def test_a_worker_that_resumes_under_a_new_name_gives_up_the_old_one_at_once(redis_conn):
    """A worker that lost Redis kills its horse and resumes under a new name. The old name's key
    lived on until it expired (12 s), and the sweeps left the job it was running alone so long."""
    from rq import Queue
    from rq.scheduler import RQScheduler

    from app.queueing import recovery
    from app.queueing.workers import ForkingWorker

    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    worker = ForkingWorker([queue], connection=redis_conn)
    worker.register_birth()
    old_name = worker.name
    worker.scheduler = RQScheduler([queue], connection=redis_conn, serializer=JSONSerializer)
    assert worker.scheduler.acquire_locks() == {"metrics"}  # its scheduler child's lock (61 s)
    job = queue.enqueue("tests.fixtures.say_hello", "x")
    redis_conn.lrem("rq:queue:metrics", 0, job.id)
    job.set_status(JobStatus.STARTED)
    job.worker_name = old_name
    job.save()
    redis_conn.zadd("rq:wip:metrics", {f"{job.id}:run1": time.time() + 300})
    redis_conn.sadd(f"rq:worker:{old_name}:executions", f"{job.id}:run1")
    assert recovery.sweep(redis_conn, ["metrics"]) == []  # its worker is alive and runs it

    worker.outage_resume.start_again_under_a_new_name()
    assert worker.name != old_name
    assert not redis_conn.exists(f"rq:worker:{old_name}")
    assert f"rq:worker:{old_name}".encode() not in redis_conn.smembers("rq:workers")
    assert recovery.sweep(redis_conn, ["metrics"]) == [job.id]  # at the next sweep, not 12 s on
    assert queued("metrics") == [job.id]
    assert not redis_conn.exists("rq:scheduler-lock:metrics")  # the next scheduler (a new name) takes the queue now


def test_an_earlier_runs_entry_is_dropped_so_rqs_cleanup_never_retries_the_running_job(redis_conn):
    """A job whose first worker died was requeued and runs again on a live worker. The dead run's
    entry stays in the started registry; when it expired, RQ's own cleanup saw a STARTED job and
    retried it while the new run went on: the job ran twice. The sweep
    drops such an entry; the live run's own entry stays."""
    from rq import Queue
    from rq.registry import StartedJobRegistry

    from app.queueing import recovery

    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    job = queue.enqueue("tests.fixtures.say_hello", "x", retry=Retry(max=3))
    redis_conn.lrem("rq:queue:metrics", 0, job.id)
    job.set_status(JobStatus.STARTED)
    job.worker_name = "live-worker"
    job.save()
    redis_conn.hset("rq:worker:live-worker", "state", "busy")  # alive
    redis_conn.sadd("rq:worker:live-worker:executions", f"{job.id}:run2")
    redis_conn.zadd("rq:wip:metrics", {f"{job.id}:run1": 1, f"{job.id}:run2": 9999999999})  # run1's expired
    assert recovery.sweep(redis_conn, ["metrics"]) == []  # nothing to requeue: it is running
    assert [m.decode() for m in redis_conn.zrange("rq:wip:metrics", 0, -1)] == [f"{job.id}:run2"]
    StartedJobRegistry("metrics", connection=redis_conn, serializer=JSONSerializer).cleanup()  # RQ's own
    assert job.get_status(refresh=True) == JobStatus.STARTED and job.retries_left == 3  # not retried
    assert redis_conn.zcard("rq:scheduled:metrics") == 0 and redis_conn.llen("rq:queue:metrics") == 0


@pytest.mark.parametrize("status", [JobStatus.FINISHED, JobStatus.QUEUED])
def test_rqs_intermediate_cleanup_never_fails_or_retries_a_job(redis_conn, status):
    """A horse killed before it took its id out of `<queue>:intermediate` leaves the id there. A
    minute later RQ's own cleanup called handle_job_failure on the job whatever its status: a job
    that had finished meanwhile was retried and ran again. A finished job is left alone, and one still waiting to start is requeued."""
    import time as _time

    from rq import Queue

    from app.queueing.workers import ForkingWorker

    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    job = queue.enqueue("tests.fixtures.say_hello", "x", retry=Retry(max=3))
    redis_conn.lrem("rq:queue:metrics", 0, job.id)
    job.set_status(status)
    redis_conn.rpush("rq:queue:metrics:intermediate", job.id)
    redis_conn.set(queue.intermediate_queue.get_first_seen_key(job.id), _time.time() - 120)  # seen 2 minutes ago
    worker = ForkingWorker([queue], connection=redis_conn)
    worker.clean_registries()
    assert redis_conn.llen("rq:queue:metrics:intermediate") == 0  # the stale id is gone
    assert redis_conn.zcard("rq:scheduled:metrics") == 0 and queue.failed_job_registry.count == 0  # not retried, not failed
    job.refresh()
    assert job.get_status() == status and job.retries_left == 3
    assert redis_conn.lrange("rq:queue:metrics", 0, -1) == ([job.id.encode()] if status == JobStatus.QUEUED else [])


@pytest.mark.parametrize("first", ["take-back", "claim"])
def test_a_take_back_racing_the_thawed_popper_runs_the_job_once(redis_conn, tmp_path, first, django_capture_on_commit_callbacks):
    """A one-queue worker's pop moved the job into the intermediate list, then the worker froze
    past the hand-over's limit. The sweep's take-back and the thawed popper's claim are one atomic
    LREM each: whichever comes first, the job runs once (issue #33 item 2)."""
    from app.queueing import recovery, rq_compat
    from app.queueing.workers import InProcessWorker

    runs = tmp_path / "runs"
    with django_capture_on_commit_callbacks(execute=True):
        job_id = fixtures.sleep_then_mark.delay(0, str(runs)).id
    popper = InProcessWorker([django_rq.get_queue("metrics")], connection=redis_conn)
    job, queue = popper.dequeue_job_and_maintain_ttl(timeout=1)  # its BLMOVE
    assert job.id == job_id and redis_conn.lpos(rq_compat.intermediate_key("metrics"), job_id) == 0
    redis_conn.set(keys.stuck_seen("intermediate", job_id), 1, ex=1)  # first seen there long ago
    if first == "take-back":
        assert recovery.sweep(redis_conn, ["metrics"]) == [job_id]
        popper.execute_job(job, queue)  # thawed: its claim is gone, the copy never starts
        assert not runs.exists() and redis_conn.lrange(rq_compat.queue_key("metrics"), 0, -1) == [job_id.encode()]
    else:
        popper.execute_job(job, queue)
        assert recovery.sweep(redis_conn, ["metrics"]) == []  # claimed: nothing to take back
    InProcessWorker([django_rq.get_queue("metrics")], connection=redis_conn).work(burst=True, with_scheduler=False)
    assert len(runs.read_text().split()) == 1
    assert Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer).get_status() == JobStatus.FINISHED


def test_a_job_pushed_twice_runs_once_on_a_one_queue_worker(redis_conn, tmp_path, run_worker, django_capture_on_commit_callbacks):
    """A duplicate push (a take-back and a reconciler's re-send of the same job): the second pop
    is dropped, its intermediate entry taken out with it, and nothing is left to take back."""
    from app.queueing import recovery, rq_compat

    runs = tmp_path / "runs"
    with django_capture_on_commit_callbacks(execute=True):
        job_id = fixtures.sleep_then_mark.delay(0, str(runs)).id
    redis_conn.rpush(rq_compat.queue_key("metrics"), job_id)
    run_worker("metrics")
    assert len(runs.read_text().split()) == 1
    assert redis_conn.llen(rq_compat.intermediate_key("metrics")) == 0 and recovery.sweep(redis_conn, ["metrics"]) == []


def test_a_horse_its_worker_killed_for_the_hard_timeout_is_a_failed_attempt_not_an_abandon(redis_conn, tmp_path, django_capture_on_commit_callbacks):
    """RQ's parent kills its horse itself past the job's timeout + 60 s (kill_horse, as here): that
    run is the job's failed attempt, retried after its backoff, not an abandon requeued at once."""
    import threading

    from app.queueing import rq_compat
    from app.queueing.workers import ForkingWorker

    with django_capture_on_commit_callbacks(execute=True):
        job_id = fixtures.sleep_then_mark.delay(30, str(tmp_path / "runs")).id
    worker = ForkingWorker([django_rq.get_queue("metrics")], connection=redis_conn)
    retries_left = int(redis_conn.hget(rq_compat.job_key(job_id), "retries_left"))

    def kill_when_started() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (worker.horse_pid and redis_conn.hget(rq_compat.job_key(job_id), "status") == b"started"):
            time.sleep(0.05)
        worker.kill_horse()

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    worker.work(burst=True, with_scheduler=False)
    killer.join()
    job = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.SCHEDULED and job.retries_left == retries_left - 1
    assert "abandoned" not in job.meta  # no abandon counted
