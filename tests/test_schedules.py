"""The recurring refresh: registered once whatever the restarts, enqueued once per period."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from tests import redis_db
from tests.e2e.processes import logs, manage, running, stack_env

SCHEDULE_ID = "schedule-refresh-all-dashboards"


def scheduled_ids(redis_conn: redis.Redis) -> list[str]:
    return [m.decode() for m in redis_conn.zrange("rq:scheduler:scheduled_jobs", 0, -1)]


@pytest.mark.e2e
def test_restarts_keep_one_schedule_and_two_schedulers_enqueue_once(tmp_path: Path, redis_db_index: int, redis_conn: redis.Redis):
    env = stack_env(tmp_path, redis_db.redis_url(), redis_db_index, IMPACT_REFRESH_CRON="* * * * *")
    manage(env, "migrate", "--noinput")
    for _ in range(3):
        manage(env, "rqscheduler", "--register-only")
    assert scheduled_ids(redis_conn) == [SCHEDULE_ID]
    job = redis_conn.hgetall(f"rq:job:{SCHEDULE_ID}")
    assert job[b"origin"] == b"metrics"

    # A changed cron line replaces the schedule rather than adding one, and means UTC even
    # on a host in another zone (rq-scheduler alone would follow the host's zone).
    manage({**env, "IMPACT_REFRESH_CRON": "0 3 * * *", "TZ": "America/New_York"}, "rqscheduler", "--register-only")
    assert scheduled_ids(redis_conn) == [SCHEDULE_ID]
    due_at = datetime.fromtimestamp(redis_conn.zscore("rq:scheduler:scheduled_jobs", SCHEDULE_ID), UTC)
    assert (due_at.hour, due_at.minute) == (3, 0)
    manage(env, "rqscheduler", "--register-only")

    # Two scheduler processes across one minute boundary (UTC): the refresh is queued once.
    due = redis_conn.zscore("rq:scheduler:scheduled_jobs", SCHEDULE_ID)
    assert datetime.fromtimestamp(due, UTC).second == 0
    log_dir = tmp_path / "logs"
    with running(env, ["manage.py", "rqscheduler", "--interval", "1"], ["manage.py", "rqscheduler", "--interval", "1"], log_dir=log_dir):
        # Queued within 30 s of the boundary (two schedulers passing every second; the margin is
        # for a loaded 2-core machine, where starting a scheduler alone can take seconds) ...
        deadline = due + 30
        while time.time() < deadline and not redis_conn.llen("rq:queue:metrics"):
            time.sleep(0.2)
        # ... then three more passes of each (1 s apart): a second copy would be queued by now.
        moved_at = time.monotonic()
        while time.monotonic() < moved_at + 3:
            time.sleep(0.2)
        queued = [m.decode() for m in redis_conn.lrange("rq:queue:metrics", 0, -1)]
        assert queued == [SCHEDULE_ID], (queued, logs(log_dir))
        # ... and it is back in the schedule for the next minute, still once.
        assert scheduled_ids(redis_conn) == [SCHEDULE_ID]
        assert redis_conn.zscore("rq:scheduler:scheduled_jobs", SCHEDULE_ID) == due + 60


def test_a_scheduler_never_frees_the_lock_another_one_holds(redis_conn: redis.Redis):
    from app.queueing.scheduling import ProjectScheduler

    first = ProjectScheduler(queue_name="metrics", interval=1, connection=redis_conn)
    second = ProjectScheduler(queue_name="metrics", interval=1, connection=redis_conn)
    assert first.acquire_lock()
    redis_conn.delete(first.scheduler_lock_key)  # the first pass outlived its lock ...
    assert second.acquire_lock()  # ... and the second scheduler took over
    first.remove_lock()  # the first one's release must not free the second one's lock
    assert redis_conn.get(second.scheduler_lock_key) == second._pass_lock.token.encode()
    assert not ProjectScheduler(queue_name="metrics", interval=1, connection=redis_conn).acquire_lock()
    second.remove_lock()
    assert not redis_conn.exists(second.scheduler_lock_key)


def test_a_killed_schedulers_lock_holds_its_successor_up_3_s_past_the_interval(redis_conn: redis.Redis):
    """rq-scheduler's lock lives the interval plus 10 s: a scheduler killed mid-pass kept its
    restarted successor from every pass (sweeps and re-sends included) for up to 15 s. It is held
    for one pass only, so it needs little spare: 3 s past the interval."""
    from app.queueing.scheduling import ProjectScheduler

    scheduler = ProjectScheduler(queue_name="metrics", interval=5, connection=redis_conn)
    assert scheduler.acquire_lock()
    assert 5 < redis_conn.ttl(scheduler.scheduler_lock_key) <= 8
    scheduler.remove_lock()


def test_a_scheduler_resuming_after_an_outage_passes_at_once(tmp_path: Path):
    """Redis went away mid-pass: the lock could not be released, and a Redis restarted from its
    AOF still holds it for up to 15 s. The resumed loop must not skip its passes ("Lock already
    taken") for that long, sweeps and re-sends included. A real
    outage here: a private redis-server with an AOF, killed during the pass and started again."""
    import shutil

    from app.queueing.scheduling import ProjectScheduler
    from tests.faults.servers import RedisServer

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    try:
        connection = server.client()
        cut = ProjectScheduler(queue_name="metrics", interval=5, connection=connection)
        assert cut.acquire_lock()  # the pass the outage cuts short
        server.kill()
        with pytest.raises(redis.ConnectionError):
            connection.ping()  # Redis is really gone: the pass's release cannot reach it
        server.start()  # same port, same AOF
        assert connection.ttl(cut.scheduler_lock_key) > 0  # the lock came back with the data
        resumed = cut.successor()
        assert resumed is not cut and resumed._interval == 5 and resumed.queue_name == "metrics"
        assert resumed.acquire_lock()  # at once, not after the lock's TTL
        other = ProjectScheduler(queue_name="metrics", interval=5, connection=connection)
        assert not other.acquire_lock()  # still one scheduler at a time
    finally:
        server.stop()


def test_a_killed_schedulers_retry_locks_do_not_hold_up_the_retries(redis_conn: redis.Redis):
    """rqscheduler fires due retries under RQ's per-queue scheduler locks (61 s). One killed
    between taking and releasing them under a name of its own would hold up every retry of the
    light queues for up to 61 s. Its successor takes them over; a lock that a worker's own RQ scheduler holds is still left alone."""
    from datetime import timedelta

    from rq import Queue
    from rq.scheduler import RQScheduler
    from rq.serializers import JSONSerializer

    from app.queueing.scheduling import RETRY_LOCK_OWNER, ProjectScheduler

    emails = Queue("emails", connection=redis_conn, serializer=JSONSerializer)
    images = Queue("images", connection=redis_conn, serializer=JSONSerializer)
    due_mail = emails.enqueue_in(timedelta(seconds=-1), "tests.fixtures.say_hello", "x")
    due_image = images.enqueue_in(timedelta(seconds=-1), "tests.fixtures.say_hello", "y")
    killed = RQScheduler(["emails", "metrics"], connection=redis_conn, serializer=JSONSerializer, name=RETRY_LOCK_OWNER)
    assert killed.acquire_locks() == {"emails", "metrics"}  # ... and never released them
    worker_child = RQScheduler(["images"], connection=redis_conn, serializer=JSONSerializer)
    assert worker_child.acquire_locks() == {"images"}  # a worker's live scheduler child

    ProjectScheduler(queue_name="metrics", interval=5, connection=redis_conn)._fire_due_retries(["emails", "metrics", "images"])
    assert emails.get_job_ids() == [due_mail.id]
    assert images.get_job_ids() == [] and redis_conn.zscore("rq:scheduled:images", due_image.id) is not None
    assert not redis_conn.exists("rq:scheduler-lock:emails")  # released again



def test_the_pools_members_run_no_scheduler_child(redis_conn: redis.Redis):
    """A member's own RQ scheduler child would hold the pool's queue locks for 61 s after dying
    with its member, and no retry of those queues would fire meanwhile: the pool's members run
    none, and rqscheduler fires their retries. Asked for one, a member still moves nothing."""
    from datetime import timedelta

    from rq import Queue
    from rq.serializers import JSONSerializer

    from app.queueing.workers import RecyclingWorker

    emails = Queue("emails", connection=redis_conn, serializer=JSONSerializer)
    due = emails.enqueue_in(timedelta(seconds=-1), "tests.fixtures.say_hello", "x")

    RecyclingWorker([emails], connection=redis_conn).work(burst=True, with_scheduler=True)

    assert redis_conn.zscore("rq:scheduled:emails", due.id) is not None
    assert emails.get_job_ids() == []
    assert not redis_conn.exists("rq:scheduler-lock:emails")
