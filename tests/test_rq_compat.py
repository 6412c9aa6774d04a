"""Contract tests of the compatibility gate, app/queueing/rq_compat/: every fast path against RQ's own code path.

The same jobs go through RQ's path (QUEUEING_FAST_PATHS off) and through the fast path, and
everything they leave in Redis — every key, every field, every registry entry, result, execution
record and worker counter — is compared, with only times, ids RQ draws and durations masked.
An rq upgrade (the version gate turns the fast paths off) is checked by running this file. The
private names of rq-scheduler, redis-py and rq-dashboard the gate touches are each run on that
library's own code path, and each library's installed version is pinned to its gate's.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import uuid
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
import redis
import rq
from rq import Queue
from rq.job import Job, JobStatus, Retry
from rq.serializers import JSONSerializer
from rq.utils import now

from app.queueing import catalog as registry
from app.queueing import dispatch, rq_compat
from app.queueing import stats as job_metrics
from app.queueing.connections import get_queue
from app.queueing.workers import InProcessWorker
from tests.signing import sign_in_redis

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = "tests.fixtures.echo_call"
CALLS = [
    ([], {}),
    ([7], {}),
    ([1, "Zoë <script>", 2.5, None, True], {}),
    ([{"nested": [1, {"deep": "é"}]}], {"flag": False, "ids": [3, 4]}),
    ([], {"only": "kwargs"}),
]

_TIME = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?")
_FLOAT = re.compile(rb"^-?\d+\.\d+(e-?\d+)?$")
_HEX = re.compile(rb"[0-9a-f]{32}")
_DURATION = re.compile(rb'"duration": -?[0-9.e-]+')  # an attempt's duration in the meta (outcomes.note_failure)


def snapshot(connection: redis.Redis, keep_ids: set[str]) -> dict[str, Any]:
    """Everything in the DB, with times, durations and ids RQ draws (executions) masked."""
    keep = {job_id.encode() for job_id in keep_ids}

    def mask(value: bytes) -> bytes:
        value = _TIME.sub(b"<time>", value)
        value = _DURATION.sub(b'"duration": <float>', value)
        if _FLOAT.match(value):
            return b"<float>"
        return _HEX.sub(lambda m: m.group(0) if m.group(0) in keep else b"<id>", value)

    state: dict[str, Any] = {}
    for raw_key in connection.keys("*"):
        key = mask(raw_key).decode()
        kind = connection.type(raw_key).decode()
        if kind == "hash":
            # ip_address: a port per client; the process a worker records (liveness.PROCESS_FIELD): a pid per run
            value: Any = {mask(k): mask(v) for k, v in connection.hgetall(raw_key).items() if k not in (b"ip_address", b"egoejo_process")}
            if key.startswith("egoejo:jobstats:"):  # which bucket a duration falls in is timing: counts only
                buckets = Counter()
                for field in [f for f in value if b"_bucket:" in f]:
                    buckets[field.split(b":")[0]] += int(value.pop(field))
                value.update(buckets)
        elif kind == "zset":
            value = sorted(mask(m) for m in connection.zrange(raw_key, 0, -1))
        elif kind == "list":
            value = [mask(m) for m in connection.lrange(raw_key, 0, -1)]
        elif kind == "set":
            value = sorted(mask(m) for m in connection.smembers(raw_key))
        elif kind == "stream":
            value = [{mask(k): mask(v) for k, v in fields.items()} for _, fields in connection.xrange(raw_key)]
        else:
            value = mask(connection.get(raw_key) or b"")
        ttl = connection.ttl(raw_key)
        state.setdefault(key, []).append((kind, value, "expires" if ttl > 0 else ttl))
    return state


def both_ways(settings: Any, connection: redis.Redis, scenario: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run `scenario()` with the fast paths, then (on an empty DB) with RQ's own paths."""
    snapshots = []
    for fast in (True, False):
        connection.flushdb()
        job_metrics._announced.clear()
        settings.QUEUEING_FAST_PATHS = fast
        random.seed(1234)  # the same retry jitter both ways
        ids = scenario()
        snapshots.append(snapshot(connection, set(ids)))
    settings.QUEUEING_FAST_PATHS = True
    return snapshots[0], snapshots[1]


def assert_same(fast: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert sorted(fast) == sorted(theirs)
    for key in fast:
        assert fast[key] == theirs[key], key


# -- pushing ------------------------------------------------------------------------------------


def push(calls: list[tuple[list[Any], dict[str, Any]]], path: str = ECHO, ids: list[str] | None = None) -> list[str]:
    spec = registry.spec_for(path)
    ids = ids or [f"job{index:04d}" + "0" * 25 for index in range(len(calls))]
    dispatch.send([dispatch.Push(spec, job_id, list(args), kwargs, None) for job_id, (args, kwargs) in zip(ids, calls, strict=True)])
    return ids


def test_a_pushed_batch_is_what_rqs_own_unique_enqueue_writes(settings, redis_conn):
    fast, theirs = both_ways(settings, redis_conn, lambda: push(CALLS))
    assert_same(fast, theirs)
    assert fast["rq:queue:metrics"][0][1] == [f"job{index:04d}".encode() + b"0" * 25 for index in range(len(CALLS))]


def test_a_batch_pushed_at_the_front_is_what_rqs_own_unique_enqueue_at_front_writes(settings, redis_conn):
    """The reconciler sends jobs Redis lost back at the front: the first of the batches at the
    head, ahead of what the queue held, and each job written as RQ writes it."""
    spec = registry.spec_for(ECHO)

    def scenario() -> list[str]:
        waiting = push(CALLS[:2], ids=["wait" + str(index) * 28 for index in range(2)])
        ids = [f"front{index}" + "0" * 26 for index in range(len(CALLS))]
        pushes = [dispatch.Push(spec, job_id, list(args), kwargs, None) for job_id, (args, kwargs) in zip(ids, CALLS, strict=True)]
        pushes.insert(2, dispatch.Push(registry.spec_for("tests.fixtures.say_hello"), "hello" + "0" * 27, ["x"], {}, None))
        assert dispatch.send(pushes, at_front=True) == len(pushes)
        return [*waiting, *ids, pushes[2].job_id]

    fast, theirs = both_ways(settings, redis_conn, scenario)
    assert_same(fast, theirs)
    heads = [job_id.encode() for job_id in ("front0", "front1")]
    assert [entry[:6] for entry in fast["rq:queue:metrics"][0][1][:4]] == [*heads, b"hello0", b"front2"]
    assert [entry[:5] for entry in fast["rq:queue:metrics"][0][1][-2:]] == [b"wait0", b"wait1"]


def test_every_field_is_the_one_rqs_enqueue_many_writes(redis_conn):
    """Beside RQ's unique path, the template also matches RQ's bulk path, field by field."""
    from app.queueing.catalog import job_options

    spec = registry.spec_for(ECHO)
    random.seed(99)
    ours = push(CALLS)
    random.seed(99)
    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)  # RQ's own class
    datas = [Queue.prepare_data(ECHO, args=list(a), kwargs=k, **job_options(spec, uuid.uuid4().hex, list(a))) for a, k in CALLS]
    with queue.connection.pipeline() as pipe:
        theirs = [job.id for job in queue.enqueue_many(datas, pipeline=pipe)]
        pipe.execute()
    timestamps = {b"created_at", b"enqueued_at"}
    for our_id, their_id in zip(ours, theirs, strict=True):
        our_hash, their_hash = redis_conn.hgetall(f"rq:job:{our_id}"), redis_conn.hgetall(f"rq:job:{their_id}")
        # RQ's bulk path has no hook to sign its jobs: our meta is theirs plus the signature.
        our_meta = json.loads(our_hash.pop(b"meta"))
        assert set(our_meta.pop("sig")) <= set("0123456789abcdef")
        assert our_meta == json.loads(their_hash.pop(b"meta"))
        assert {k: v for k, v in our_hash.items() if k not in timestamps} == {k: v for k, v in their_hash.items() if k not in timestamps}
        job = Job.fetch(our_id, connection=redis_conn, serializer=JSONSerializer)
        assert isinstance(job.created_at, datetime) and isinstance(job.enqueued_at, datetime)


def test_only_the_per_call_fields_differ_within_a_batch(redis_conn, settings):
    settings.QUEUEING_FAST_PATHS = True  # the template's property (RQ's path builds each job apart)
    ids = push(CALLS)
    hashes = [redis_conn.hgetall(f"rq:job:{job_id}") for job_id in ids]
    differing = {key.decode() for key in hashes[0] if len({h[key] for h in hashes}) > 1}
    assert differing <= set(rq_compat.PER_CALL_FIELDS)
    assert {"data", "description"} <= differing  # the calls do differ: the check has teeth


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "rq"])
def test_a_second_push_of_a_job_redis_holds_writes_nothing(settings, redis_conn, fast):
    settings.QUEUEING_FAST_PATHS = fast
    ids = push(CALLS[:2])
    before = snapshot(redis_conn, set(ids))
    assert push(CALLS[:2], ids=ids) == ids
    assert snapshot(redis_conn, set(ids)) == before  # not queued twice, not rewritten
    redis_conn.hset(f"rq:job:{ids[0]}", "status", "finished")  # it ran meanwhile
    spec = registry.spec_for(ECHO)
    assert dispatch.send([dispatch.Push(spec, ids[0], [], {}, None)]) == 0
    assert redis_conn.lrange("rq:queue:metrics", 0, -1) == [job_id.encode() for job_id in ids]


def test_a_template_kept_from_an_earlier_batch_gets_each_batchs_own_times(redis_conn, settings):
    settings.QUEUEING_FAST_PATHS = True
    first = push(CALLS[:1])
    later = push(CALLS[:1], ids=[uuid.uuid4().hex])
    before, after = (Job.fetch(i, connection=redis_conn, serializer=JSONSerializer) for i in (*first, *later))
    assert after.enqueued_at > before.enqueued_at and after.created_at > before.created_at
    assert after.created_at == after.enqueued_at  # created and enqueued in one step


def test_a_server_that_lost_its_scripts_still_gets_every_push_once(redis_conn, settings):
    """A restarted or failed-over Redis answers NOSCRIPT: the script is loaded again and only the
    calls that were refused are sent again."""
    settings.QUEUEING_FAST_PATHS = True
    spec, other = registry.spec_for(ECHO), registry.spec_for("tests.fixtures.say_hello")
    pushes = [dispatch.Push(spec, uuid.uuid4().hex, [n], {}, None) for n in range(3)]
    pushes.insert(1, dispatch.Push(other, uuid.uuid4().hex, ["you"], {}, None))  # three batches, one pipeline
    redis_conn.script_flush()
    assert dispatch.send(pushes) == 4
    assert redis_conn.script_exists(rq_compat._SCRIPT_SHA) == [True]
    redis_conn.script_flush()
    assert dispatch.send(pushes) == 0  # already there: nothing queued twice
    queued = [m.decode() for q in ("metrics",) for m in redis_conn.lrange(f"rq:queue:{q}", 0, -1)]
    assert sorted(queued) == sorted(p.job_id for p in pushes)


def test_the_same_id_twice_in_a_batch_is_refused_and_nothing_is_written(redis_conn):
    spec = registry.spec_for(ECHO)
    job_id = uuid.uuid4().hex
    with pytest.raises(ValueError, match="more than once"):
        rq_compat.push_if_absent(redis_conn, [(get_queue("metrics"), [dispatch.Push(spec, job_id, [1], {}, None)] * 2)])
    assert redis_conn.dbsize() == 0


def test_an_invalid_id_is_refused_and_nothing_is_written(redis_conn):
    spec = registry.spec_for(ECHO)
    pushes = [dispatch.Push(spec, uuid.uuid4().hex, [1], {}, None), dispatch.Push(spec, "bad:id with space", [2], {}, None)]
    with pytest.raises(ValueError, match="Job ID"):
        rq_compat.push_if_absent(redis_conn, [(get_queue("metrics"), pushes)])
    assert redis_conn.dbsize() == 0


# -- the worker's bookkeeping -------------------------------------------------------------------


def run(connection: redis.Redis, queue_names: tuple[str, ...] = ("metrics",)) -> InProcessWorker:
    worker = InProcessWorker([Queue(name, connection=connection, serializer=JSONSerializer) for name in queue_names], connection=connection, name="contract-worker")
    worker.work(burst=True, with_scheduler=False)
    return worker


def enqueue_rq(connection: redis.Redis, path: str, *args: Any, **options: Any) -> Job:
    """RQ's own enqueue, signed as the layer's (tests/signing.py): RQ's bookkeeping is under test."""
    queue = Queue("metrics", connection=connection, serializer=JSONSerializer)
    job = queue.enqueue_call(path, args=list(args), job_id=options.pop("job_id"), **options)
    sign_in_redis(connection, job.id)
    return job


def test_successes_leave_what_rqs_own_bookkeeping_leaves(settings, redis_conn):
    def scenario() -> list[str]:
        ids = [f"ok{index}" + "0" * 30 for index in range(3)]
        for index, job_id in enumerate(ids):
            enqueue_rq(redis_conn, "tests.fixtures.say_hello", f"n{index}", job_id=job_id, result_ttl=600)
        run(redis_conn)
        return ids

    fast, theirs = both_ways(settings, redis_conn, scenario)
    assert_same(fast, theirs)
    assert any(key.startswith("rq:results:") for key in fast)  # results were compared
    assert "rq:finished:metrics" in fast and "rq:worker:contract-worker" in fast


def test_failures_and_retries_leave_what_rqs_own_bookkeeping_leaves(settings, redis_conn):
    def scenario() -> list[str]:
        ids = ["fail" + "0" * 28, "retry" + "0" * 27, "later" + "0" * 27]
        enqueue_rq(redis_conn, "tests.fixtures.fail_permanently", job_id=ids[0])
        enqueue_rq(redis_conn, "tests.fixtures.fail_transiently", job_id=ids[1], retry=Retry(max=2))
        enqueue_rq(redis_conn, "tests.fixtures.fail_transiently", job_id=ids[2], retry=Retry(max=1, interval=60))
        run(redis_conn)
        return ids

    fast, theirs = both_ways(settings, redis_conn, scenario)
    assert_same(fast, theirs)
    assert "rq:failed:metrics" in fast and "rq:scheduled:metrics" in fast


def test_dependents_leave_what_rqs_own_bookkeeping_leaves(settings, redis_conn):
    def scenario() -> list[str]:
        parent = enqueue_rq(redis_conn, "tests.fixtures.say_hello", "parent", job_id="parent" + "0" * 26)
        enqueue_rq(redis_conn, "tests.fixtures.say_hello", "child", job_id="child" + "0" * 27, depends_on=parent)
        run(redis_conn)
        return [parent.id, "child" + "0" * 27]

    fast, theirs = both_ways(settings, redis_conn, scenario)
    assert_same(fast, theirs)
    # The parent's success enqueues its dependent both ways; the layer makes no job with a
    # dependency (signing.py), so the worker refuses it rather than run it.
    child = Job.fetch("child" + "0" * 27, connection=redis_conn, serializer=JSONSerializer)
    assert child.get_status() == JobStatus.FAILED
    assert "fields the layer never writes: dependency_id" in child.latest_result().exc_string


def test_a_finished_job_is_fully_recorded_in_five_round_trips(redis_conn, monkeypatch, settings):
    settings.QUEUEING_FAST_PATHS = True  # this counts the fast path's round trips, whichever way the suite runs
    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    jobs = [queue.enqueue("tests.fixtures.say_hello", f"n{i}") for i in range(20)]
    for job in jobs:
        sign_in_redis(redis_conn, job.id)
    worker = InProcessWorker([queue], connection=redis_conn)
    worker.register_birth()  # what work() does first, and its periodic maintenance: only the jobs are counted below
    worker.last_cleaned_at = now()
    seen: Counter[str] = Counter()
    execute, immediate, command = redis.client.Pipeline.execute, redis.client.Pipeline.immediate_execute_command, redis.Redis.execute_command
    monkeypatch.setattr(redis.client.Pipeline, "execute", lambda self, *a, **k: (seen.update(["pipeline"]), execute(self, *a, **k))[1])
    monkeypatch.setattr(redis.client.Pipeline, "immediate_execute_command", lambda self, *a, **k: (seen.update([str(a[0]).upper()]), immediate(self, *a, **k))[1])
    monkeypatch.setattr(redis.Redis, "execute_command", lambda self, *a, **k: (seen.update([str(a[0]).upper()]), command(self, *a, **k))[1])
    for _ in jobs:
        job, job_queue = worker.dequeue_job_and_maintain_ttl(timeout=1)
        worker.execute_job(job, job_queue)
    monkeypatch.undo()
    # BLMOVE, HGETALL, the hand-over's claim (one script: rq_compat.claim_popped, the fence against a
    # take-back), and two pipelines: start, success; the suspension flag's EXISTS once a second
    # (worker/suspension.py), not once a job. RQ 3.0 alone also sends a third
    # pipeline, the worker's state twice, the job's heartbeat, WATCH and SMEMBERS.
    per_job = {name: count / len(jobs) for name, count in seen.items()}
    assert 2 <= per_job.pop("pipeline") <= 2.1, seen
    assert set(per_job) <= {"BLMOVE", "HGETALL", "EVAL", "EXISTS", "HSET"}, seen
    assert per_job["BLMOVE"] == per_job["HGETALL"] == per_job["EVAL"] == 1
    assert per_job.get("EXISTS", 0) <= 0.1, seen
    assert per_job.get("HSET", 0) < 0.5, seen
    assert all(job.get_status(refresh=True) == JobStatus.FINISHED for job in jobs)


def test_a_job_whose_data_vanished_while_it_ran_is_written_whole_again(redis_conn):
    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    job = queue.enqueue("tests.fixtures.lose_own_job_data", description="lost while running")
    sign_in_redis(redis_conn, job.id)
    run(redis_conn)
    again = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer)
    assert again.get_status() == JobStatus.FINISHED
    assert again.func_name == "tests.fixtures.lose_own_job_data" and again.origin == "metrics"
    assert again.description == "lost while running"
    assert again.latest_result().return_value == "ran"


# -- RQ internals the project relies on ---------------------------------------------------------


def test_rq_calls_exception_handlers_before_it_decides_on_a_retry(redis_conn):
    """classify_failure clears retries_left in an exception handler: RQ must call those first."""
    job = enqueue_rq(redis_conn, "tests.fixtures.fail_permanently", job_id="order" + "0" * 27, retry=Retry(max=3))
    run(redis_conn)
    assert job.get_status(refresh=True) == JobStatus.FAILED  # not SCHEDULED/QUEUED for a retry
    assert redis_conn.zrange("rq:failed:metrics", 0, -1) == [job.id.encode()]
    assert not redis_conn.zrange("rq:scheduled:metrics", 0, -1)


def test_rq_writes_a_retrys_scheduled_status_before_the_failures_pipeline_runs(redis_conn):
    """The sweep takes back a job that says SCHEDULED, waits in no scheduled registry and keeps a
    dead worker's started entry (recovery.sweep). That state exists because RQ's Job.retry writes
    the status at once and only queues the scheduling in the failure's pipeline: a worker killed
    between the two leaves it. Should RQ move the write into the pipeline, this fails, and the
    sweep's branch can be kept as a guard for earlier versions or dropped."""
    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    job = enqueue_rq(redis_conn, ECHO, job_id="retry" + "0" * 27, retry=Retry(max=2, interval=60))
    assert job.get_status(refresh=True) == JobStatus.QUEUED
    with redis_conn.pipeline() as pipe:
        job.retry(queue, pipe)  # the pipeline is never executed: the worker died here
    assert Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer).get_status() == JobStatus.SCHEDULED
    assert redis_conn.zscore(rq_compat.scheduled_key("metrics"), job.id) is None


def test_rqs_failure_and_retry_log_templates_are_the_ones_filtered(redis_conn, caplog):
    """RQ's own lines for a failed attempt (its traceback at ERROR, its "N remaining") are dropped
    by the filter on its loggers (rq_compat/logs.py) by their templates: RQ's own worker, run
    without the filter, logs exactly those templates; with it, none reaches a handler."""
    import logging

    from rq import SimpleWorker

    caplog.set_level(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in rq_compat.RQ_FAILURE_LOGGERS]

    def failing_run(job_id: str) -> set[object]:
        caplog.clear()
        enqueue_rq(redis_conn, "tests.fixtures.fail_transiently", job_id=job_id, retry=Retry(max=2, interval=60))
        queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
        SimpleWorker([queue], connection=redis_conn, serializer=JSONSerializer).work(burst=True, with_scheduler=False)
        return {record.msg for record in caplog.records if record.name in rq_compat.RQ_FAILURE_LOGGERS}

    for logger in loggers:
        logger.removeFilter(rq_compat.RQ_FAILURE_LINES_FILTER)
    try:
        unfiltered = failing_run("logs1" + "0" * 27)
    finally:
        rq_compat.quiet_rq_failure_logs()
    assert rq_compat.RQ_FAILURE_TRACEBACK in unfiltered
    assert unfiltered & rq_compat.RQ_RETRY_LINES  # "scheduled for retry at ..., N remaining"
    filtered = failing_run("logs2" + "0" * 27)
    assert rq_compat.RQ_FAILURE_TRACEBACK not in filtered and not filtered & rq_compat.RQ_RETRY_LINES


ANOTHER_RQ = """
import rq
rq.__version__ = "9.9.9"  # what an upgrade installs, before anything of the project is imported
import django
django.setup()
from django.conf import settings
from app.queueing import rq_compat
installed = rq.utils.utcparse is rq_compat.utcparse and rq.serializers.resolve_serializer is rq_compat.resolve_serializer
print("setting", settings.QUEUEING_FAST_PATHS, "fast_paths", rq_compat.fast_paths(), "installed", installed)
"""


def test_the_gate_turns_fast_paths_off_on_another_rq_version(redis_db_index):
    """A real version mismatch: a process whose rq says 9.9.9 runs the module's own check at import,
    and with the setting on, the fast paths stay off and say why."""
    import subprocess
    import sys
    from pathlib import Path

    assert rq.__version__ == rq_compat.VERIFIED_RQ_VERSION, "rq was upgraded: run this file, then move VERIFIED_RQ_VERSION"
    env = {k: v for k, v in os.environ.items() if k != "RQ_FAST_PATHS"}
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", RQ_FAST_PATHS="1")
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", ANOTHER_RQ], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "setting True fast_paths False installed False" in result.stdout, result.stdout + result.stderr
    assert "using RQ's own code paths: rq 9.9.9 is not the 3.0.0 the fast paths were verified against" in result.stdout + result.stderr


def _speedups_installed() -> bool:
    return rq.utils.utcparse is rq_compat.utcparse and rq.serializers.resolve_serializer is rq_compat.resolve_serializer


def test_speedups_are_installed_and_answer_as_rq_does():
    import datetime

    import rq.job
    import rq.utils
    from django.conf import settings
    from rq.serializers import DefaultSerializer

    # Installed at start-up exactly when the fast paths are on (RQ_FAST_PATHS), RQ's own otherwise.
    assert _speedups_installed() == settings.QUEUEING_FAST_PATHS
    assert (rq.job.resolve_serializer is rq_compat.resolve_serializer) == settings.QUEUEING_FAST_PATHS
    for serializer in (JSONSerializer, None, "rq.serializers.JSONSerializer", DefaultSerializer):
        assert rq_compat.resolve_serializer(serializer) is rq_compat._original_resolve(serializer)
    with pytest.raises(NotImplementedError):
        rq_compat.resolve_serializer(object())
    moment = datetime.datetime(2026, 11, 25, 16, 41, 53, 123456, tzinfo=datetime.UTC)
    for text in (rq.utils.utcformat(moment), "2026-11-25T16:41:53Z", "2026-11-25T16:41:53.000001Z"):
        assert rq.utils.utcparse(text) == rq_compat._original_utcparse(text)
    with pytest.raises(ValueError):
        rq.utils.utcparse("2026-11-25 16:41:53")


def test_a_stopped_job_leaves_what_rqs_own_bookkeeping_leaves(tmp_path, redis_db_index, redis_conn):
    """An operator's stop (`rq` command `stop-job`) on the forking worker, both ways, in real processes."""
    import time

    from rq.command import send_stop_job_command

    from tests import redis_db
    from tests.e2e.processes import logs, manage, running, stack_env

    snapshots = []
    for fast in ("1", "0"):
        redis_conn.flushdb()
        (tmp_path / fast).mkdir()
        env = stack_env(tmp_path / fast, redis_db.redis_url(), redis_db_index, RQ_FAST_PATHS=fast)
        manage(env, "migrate", "--noinput")
        job = enqueue_rq(redis_conn, "tests.fixtures.sleep_for", 30, job_id="stopped" + "0" * 25)
        log_dir = tmp_path / fast / "logs"
        with running(env, ["manage.py", "rqworker", "metrics", "--burst", "--name", "contract-worker"], log_dir=log_dir) as [worker]:
            deadline = time.monotonic() + 60
            while job.get_status(refresh=True) != JobStatus.STARTED and time.monotonic() < deadline:
                time.sleep(0.1)
            send_stop_job_command(redis_conn, job.id)
            worker.wait(timeout=60)
        assert job.get_status(refresh=True) == JobStatus.STOPPED, logs(log_dir)
        state = snapshot(redis_conn, {job.id})
        for entries in state.values():  # process ids differ between the two runs
            for _, value, _ in entries:
                if isinstance(value, dict):
                    value.pop(b"pid", None)
        snapshots.append(state)
    assert_same(*snapshots)


def test_the_key_formats_are_rqs_own(redis_conn):
    """The sweeps and the reconciler read RQ's keys by name; each name is the one RQ's objects use."""
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
    from rq.worker import Worker

    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    worker = Worker([queue], connection=redis_conn, name="w-1")
    assert rq_compat.queue_key("metrics") == queue.key
    assert rq_compat.intermediate_key("metrics") == queue.intermediate_queue.key
    assert rq_compat.started_key("metrics") == StartedJobRegistry("metrics", connection=redis_conn).key
    assert rq_compat.scheduled_key("metrics") == ScheduledJobRegistry("metrics", connection=redis_conn).key
    assert rq_compat.failed_key("metrics") == FailedJobRegistry("metrics", connection=redis_conn).key
    assert rq_compat.worker_key("w-1") == worker.key
    assert rq_compat.job_key("abc") == Job.key_for("abc")
    queue.enqueue("tests.fixtures.say_hello", "x")
    assert redis_conn.smembers(rq_compat.ALL_QUEUES_KEY) == {queue.key.encode()}
    worker.register_birth()
    assert [rq_compat.is_worker_key(key) for key in (worker.key, queue.key, Job.key_for("abc"))] == [True, False, False]
    # The suspension flag worker/suspension.py reads after each dequeue is the one RQ's suspend() sets,
    # and a worker's running job is the one RQ reads from its executions set (work_in_sight.py).
    from rq.suspension import is_suspended, resume, suspend

    suspend(redis_conn)
    assert redis_conn.exists(rq_compat.SUSPENDED_KEY) and is_suspended(redis_conn)
    resume(redis_conn)
    assert not redis_conn.exists(rq_compat.SUSPENDED_KEY)


# -- JSON only, and the fields of a job the layer made --------------------------------------------


class _RunsACommand:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.marker}",))


def _json_only_installed() -> bool:
    from app.queueing.serialization import JobSerializer

    return (
        rq.serializers.DefaultSerializer.loads is JobSerializer.loads
        and Job._deserialize_data is rq_compat.json_only._deserialize_data_or_mark
        and Job.restore is rq_compat.json_only._restore_or_mark
    )


def test_rqs_default_serializer_reads_json_and_never_unpickles(redis_conn, tmp_path):
    import pickle

    from rq.serializers import DefaultSerializer, resolve_serializer

    from app.queueing.serialization import Unreadable

    assert _json_only_installed()  # by the app's ready(), in every process
    marker = tmp_path / "ran"
    for serializer in (None, DefaultSerializer, "pickle"):
        resolved = resolve_serializer(serializer)
        assert isinstance(resolved.loads(pickle.dumps(_RunsACommand(str(marker)))), Unreadable)
        assert resolved.loads(resolved.dumps({"a": [1]})) == {"a": [1]}
    # RQ's own reader with its default serializer (what django-rq's worker page does).
    job = Queue("metrics", connection=redis_conn).enqueue("tests.fixtures.say_hello", "x")
    redis_conn.hset(job.key, "meta", pickle.dumps(_RunsACommand(str(marker))))
    fetched = Job.fetch(job.id, connection=redis_conn)
    assert fetched.func_name == "tests.fixtures.say_hello" and fetched.args == ["x"]
    assert isinstance(fetched.get_meta(), Unreadable)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", b"\x80pickle"), ("status", b"not-a-status"), ("created_at", b"yesterday"), ("timeout", b"soon"),
     ("retry_intervals", b"{"), ("origin", b"\xff\xfe"), ("exc_info", b"\x80\x81")],
)
def test_rqs_own_restore_reads_a_hash_it_did_not_write_without_raising(redis_conn, field, value):
    job = Queue("metrics", connection=redis_conn, serializer=JSONSerializer).enqueue("tests.fixtures.say_hello", "x")
    redis_conn.hset(job.key, field, value)
    fetched = Job.fetch(job.id, connection=redis_conn)  # rq's own Job and restore, as every page uses
    assert field in fetched.unreadable_fields
    assert fetched.func_name == "tests.fixtures.say_hello"


def test_data_that_is_not_a_json_call_reads_as_the_unreadable_function(redis_conn):
    import zlib

    job = Queue("metrics", connection=redis_conn, serializer=JSONSerializer).enqueue("tests.fixtures.say_hello", "x")
    for data in (b'"just a string"', b'[1, 2, 3, 4]', b'["f", null, "not a list", {}]', b"\x80\x04pickle"):
        redis_conn.hset(job.key, "data", zlib.compress(data))
        fetched = Job.fetch(job.id, connection=redis_conn)
        assert fetched.func_name == rq_compat.UNREADABLE_FUNC and fetched.args == () and fetched.kwargs == {}


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "rq"])
def test_every_field_rq_writes_over_a_jobs_life_is_one_the_layer_allows(settings, redis_conn, fast):
    """signing.ALLOWED_FIELDS against RQ's own code paths: success, permanent failure, retries
    (scheduled, fired, failed for good), requeue, stop. A field RQ starts writing tomorrow fails
    here before a worker refuses every job for it."""
    from app.queueing import signing
    from app.queueing.jobclass import QueueingJob, refusal_of
    from app.queueing.scheduling import ProjectScheduler

    settings.QUEUEING_FAST_PATHS = fast
    ok = push([(["a"], {})], path="tests.fixtures.say_hello", ids=["ok" + "0" * 30])
    bad = push([([], {})], path="tests.fixtures.fail_permanently", ids=["bad" + "0" * 29])
    retried = push([([], {})], path="tests.fixtures.fail_transiently", ids=["retry" + "0" * 27])
    for job_id in ok + bad + retried:
        assert refusal_of(QueueingJob.fetch(job_id, connection=redis_conn)) is None  # as pushed: the layer's
    for _ in range(6):  # each retry made due and fired, until the retries run out
        run(redis_conn)
        redis_conn.zadd("rq:scheduled:metrics", {retried[0]: 0}, xx=True)
        ProjectScheduler(queue_name="metrics", connection=redis_conn)._fire_due_retries(["metrics"])
    QueueingJob.fetch(bad[0], connection=redis_conn).requeue()
    run(redis_conn)
    fields: set[str] = set()
    for key in redis_conn.keys("rq:job:*"):
        if redis_conn.type(key) == b"hash":
            fields |= {name.decode() for name in redis_conn.hkeys(key)}
    assert {"status", "data", "meta", "retries_left", "retry_intervals", "started_at", "ended_at"} <= fields
    assert fields <= signing.ALLOWED_FIELDS, fields - signing.ALLOWED_FIELDS
    assert Job.fetch(retried[0], connection=redis_conn, serializer=JSONSerializer).get_status() == JobStatus.FAILED


# -- the other libraries' private names (rq_compat/scheduler.py, redis_py.py, dashboard.py) -------


def test_the_scheduler_gate_reads_and_sets_what_rq_schedulers_own_lock_code_uses(redis_conn):
    from rq_scheduler import Scheduler

    scheduler = Scheduler(queue_name="metrics", interval=7, connection=redis_conn)
    assert rq_compat.scheduler.interval_of(scheduler) == 7
    scheduler.register_birth()  # rq-scheduler's own code: its key lives the interval plus 10 s
    assert 16 <= redis_conn.ttl(scheduler.key) <= 17
    assert rq_compat.scheduler.holds_lock(scheduler) is False
    assert scheduler.acquire_lock()  # rq-scheduler's own acquire_lock sets the flag the gate reads
    assert rq_compat.scheduler.holds_lock(scheduler) is True
    scheduler.remove_lock()
    assert rq_compat.scheduler.holds_lock(scheduler) is False
    redis_conn.set(scheduler.scheduler_lock_key, "held")
    scheduler.remove_lock()  # not held by this scheduler, by its flag: nothing deleted
    assert redis_conn.exists(scheduler.scheduler_lock_key)
    rq_compat.scheduler.set_holds_lock(scheduler, True)
    scheduler.remove_lock()  # rq-scheduler's own remove_lock reads the flag the gate set
    assert not redis_conn.exists(scheduler.scheduler_lock_key)
    assert rq_compat.scheduler.holds_lock(scheduler) is False


def test_rq_schedulers_run_keeps_the_processs_own_signal_handlers(redis_conn):
    """rq-scheduler's `run()` installs its handlers through `_install_signal_handlers`: the mixin
    replaces that method, and the handler the process installed before `run()` is still there."""
    import signal

    from rq_scheduler import Scheduler

    class KeepsHandlers(rq_compat.scheduler.KeepsProcessSignalHandlers, Scheduler):
        pass

    def own(signum: int, frame: Any) -> None:
        pass

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGTERM, own)
        signal.signal(signal.SIGINT, own)
        Scheduler(queue_name="metrics", interval=1, connection=redis_conn).run(burst=True)  # rq-scheduler's own run
        assert signal.getsignal(signal.SIGTERM) is not own  # it does install its own: the mixin has work to do
        signal.signal(signal.SIGTERM, own)
        signal.signal(signal.SIGINT, own)
        KeepsHandlers(queue_name="metrics", interval=1, connection=redis_conn).run(burst=True)
        assert signal.getsignal(signal.SIGTERM) is own and signal.getsignal(signal.SIGINT) is own
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])


def test_a_stop_signal_reads_as_requested_whether_rq_raises_or_flags_it(redis_conn):
    """RQ's request_stop on an idle worker raises StopRequested and leaves `_stop_requested`
    unset; `shutdown_requested` reads the date it records first (worker/outage_resume.py)."""
    import signal

    from rq.exceptions import StopRequested

    worker = InProcessWorker([get_queue("metrics")], connection=redis_conn)
    assert not rq_compat.shutdown_requested(worker) and not rq_compat.stop_requested(worker)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(StopRequested):
            worker.request_stop(signal.SIGTERM, None)  # RQ's own handler, on an idle worker
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])
    assert rq_compat.shutdown_requested(worker)
    assert not rq_compat.stop_requested(worker)  # why the flag alone did not stop the wait for Redis


def test_the_redis_gate_finds_every_pool_connection_and_takes_its_socket(redis_db_index):
    from tests import redis_db

    client = redis.Redis.from_url(f"{redis_db.redis_url()}/{redis_db_index}")
    pool = client.connection_pool
    assert rq_compat.redis_py.pool_connections(pool) == []
    busy, idle = pool.get_connection(), pool.get_connection()  # both connected by the pool
    pool.release(idle)
    connections = rq_compat.redis_py.pool_connections(pool)
    assert len(connections) == 2 and busy in connections and idle in connections
    sock = rq_compat.redis_py.detach_socket(idle)
    assert sock is not None and sock.fileno() >= 0
    assert rq_compat.redis_py.detach_socket(idle) is None  # taken: the connection has none now
    sock.close()
    assert client.ping()  # the pool hands `idle` out again: redis-py's own connect() opens a new socket
    pool.release(busy)
    client.close()


def test_the_dashboard_gate_sets_the_serializer_rq_dashboard_reads(redis_conn):
    import base64

    from django.conf import settings
    from rq_dashboard.web import config

    from app.queueing.dashboard import create_app
    from app.queueing.serialization import JobSerializer

    app = create_app(settings.RQ_QUEUES_URL, "operator", "s3cret")
    assert config.serializer is JobSerializer
    connection = rq_compat.dashboard.redis_connection(app)
    assert connection.connection_pool.connection_kwargs["db"] == redis_conn.connection_pool.connection_kwargs["db"]
    job = enqueue_rq(redis_conn, ECHO, 1, job_id="dashboard" + "0" * 23)
    loaded: list[bytes] = []

    class Spy(JSONSerializer):
        @staticmethod
        def loads(data: Any, *args: Any, **kwargs: Any) -> Any:
            loaded.append(data)
            return JSONSerializer.loads(data, *args, **kwargs)

    rq_compat.dashboard.use_serializer(Spy)
    try:
        auth = {"Authorization": "Basic " + base64.b64encode(b"operator:s3cret").decode()}
        response = app.test_client().get(f"/0/data/job/{job.id}.json", headers=auth)  # rq-dashboard's own job view
    finally:
        rq_compat.dashboard.use_serializer(JobSerializer)
    assert response.status_code == 200
    assert loaded and response.get_json()["id"] == job.id  # rq-dashboard read the job's meta through Spy


@pytest.mark.parametrize(
    "gate, verified, distribution",
    [
        (rq_compat.scheduler.GATE, rq_compat.scheduler.VERIFIED_RQ_SCHEDULER_VERSION, "rq-scheduler"),
        (rq_compat.redis_py.GATE, rq_compat.redis_py.VERIFIED_REDIS_VERSION, "redis"),
        (rq_compat.dashboard.GATE, rq_compat.dashboard.VERIFIED_RQ_DASHBOARD_VERSION, "rq-dashboard"),
        (rq_compat.django_rq.GATE, rq_compat.django_rq.VERIFIED_DJANGO_RQ_VERSION, "django-rq"),
    ],
)
def test_each_librarys_privates_are_verified_against_the_installed_version(gate, verified, distribution):
    import importlib.metadata

    assert gate.distribution == distribution and gate.verified == verified
    installed = importlib.metadata.version(distribution)
    assert installed == verified, f"{distribution} was upgraded: run this file, then move the gate's VERIFIED_ version"
    assert gate.check() is True and gate.why_unverified() is None


@pytest.mark.parametrize(
    "module, use",
    [
        (rq_compat.scheduler, lambda: rq_compat.scheduler.interval_of(type("S", (), {"_interval": 2})())),
        (rq_compat.redis_py, lambda: rq_compat.redis_py.pool_connections(None)),
        (rq_compat.dashboard, lambda: rq_compat.dashboard.redis_connection(type("App", (), {"redis_conn": None})())),
    ],
)
def test_a_gate_on_another_library_version_says_so_once(module, use, monkeypatch, caplog):
    """An upgrade of the library (its installed version read as 9.9.9): the gate's functions still
    work, and the first use logs which privates are unverified, once."""
    monkeypatch.setattr(module.GATE, "_installed", "9.9.9")
    monkeypatch.setattr(module.GATE, "_warned", False)
    with caplog.at_level("WARNING", logger="app.queueing.rq_compat"):
        use()
        use()
    warnings = [r.getMessage() for r in caplog.records if "unverified private names" in r.getMessage()]
    distribution, verified = module.GATE.distribution, module.GATE.verified
    assert warnings == [f"unverified private names: {distribution} 9.9.9 is not the {verified} its private names ({module.GATE.privates}) were verified against"]
    assert module.GATE.check() is False


def test_a_one_queue_workers_pop_moves_the_job_into_the_intermediate_list_and_claim_popped_takes_it_out(redis_conn):
    """RQ 3.0's dequeue_any: BLMOVE into `<queue>:intermediate` for one queue (Redis >= 6.2), BLPOP
    off every list for several; rq_compat.claim_popped's atomic LREM is the hand-over's claim."""
    from rq.worker import Worker

    one = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    two = Queue("emails", connection=redis_conn, serializer=JSONSerializer)
    single, multi = Worker([one], connection=redis_conn), Worker([one, two], connection=redis_conn)
    assert rq_compat.pops_into_intermediate(single) and not rq_compat.pops_into_intermediate(multi)
    job = one.enqueue("tests.fixtures.say_hello", "x")
    popped, queue = single.dequeue_job_and_maintain_ttl(timeout=1)
    assert popped.id == job.id and redis_conn.lrange(rq_compat.intermediate_key("metrics"), 0, -1) == [job.id.encode()]
    assert rq_compat.claim_popped(single, queue, job.id) is True
    assert redis_conn.llen(rq_compat.intermediate_key("metrics")) == 0
    assert rq_compat.claim_popped(single, queue, job.id) is False  # taken back (or claimed) already
    other = one.enqueue("tests.fixtures.say_hello", "y")
    popped, queue = multi.dequeue_job_and_maintain_ttl(timeout=1)
    assert popped.id == other.id and redis_conn.llen(rq_compat.intermediate_key("metrics")) == 0
    assert rq_compat.claim_popped(multi, queue, other.id) is True  # off every list: its push is claimed
    assert rq_compat.claim_popped(multi, queue, other.id) is False  # claimed already: a duplicate entry's popper drops it


def test_rq_writes_a_new_enqueued_at_with_every_push_so_each_push_is_claimed_once(redis_conn):
    """The claim names the push by the job hash's `enqueued_at`: RQ must write it anew on every
    push (its requeue at the front, a retry's, a hold-back's), or a job pushed again would find
    its new push claimed already and never run; and RQ's own saves of the job must leave the
    claim's field alone."""
    queue = Queue("metrics", connection=redis_conn, serializer=JSONSerializer)
    job = queue.enqueue("tests.fixtures.say_hello", "x")
    first = redis_conn.hget(rq_compat.job_key(job.id), "enqueued_at")
    redis_conn.lrem(rq_compat.queue_key("metrics"), 0, job.id)
    redis_conn.hset(rq_compat.job_key(job.id), rq_compat.CLAIMED_PUSH_FIELD, first)
    time.sleep(0.002)
    rq_compat.requeue_at_front(queue, job)
    again = redis_conn.hget(rq_compat.job_key(job.id), "enqueued_at")
    assert again and again != first
    assert redis_conn.hget(rq_compat.job_key(job.id), rq_compat.CLAIMED_PUSH_FIELD) == first  # RQ's save kept it
    job.save_meta()
    job.save()
    assert redis_conn.hget(rq_compat.job_key(job.id), rq_compat.CLAIMED_PUSH_FIELD) == first


def test_a_push_is_claimed_once_by_its_popper_or_its_take_back(redis_conn):
    """A multi-queue worker's BLPOP takes the job off every list: a popper frozen right after it
    holds the only copy. The take-back (rq_compat.take_back_popped) and the popper's claim name
    the same push; whichever comes first wins, and the job runs once: taken back first, the
    thawed popper drops it and the next popper runs the new push; claimed first, the take-back
    leaves it to its popper."""
    from rq.worker import Worker

    from app.queueing import signing

    assert rq_compat.CLAIMED_PUSH_FIELD in signing.ALLOWED_FIELDS  # a claimed job is no forged one
    metrics, emails = (Queue(name, connection=redis_conn, serializer=JSONSerializer) for name in ("metrics", "emails"))
    frozen, other = Worker([metrics, emails], connection=redis_conn), Worker([metrics, emails], connection=redis_conn)
    job = metrics.enqueue("tests.fixtures.say_hello", "x")
    popped, queue = frozen.dequeue_job_and_maintain_ttl(timeout=1)
    assert popped.id == job.id and redis_conn.llen(rq_compat.queue_key("metrics")) == 0
    assert rq_compat.take_back_popped(redis_conn, "metrics", job.id) == 1  # the popper froze: back at the front
    assert rq_compat.take_back_popped(redis_conn, "metrics", job.id) == 0  # waiting now: nothing to take back
    again, queue_again = other.dequeue_job_and_maintain_ttl(timeout=1)
    assert again.id == job.id
    # Two poppers now hold the job, the thawed one and the new push's: one claim wins, whichever first.
    assert [rq_compat.claim_popped(other, queue_again, job.id), rq_compat.claim_popped(frozen, queue, job.id)] == [True, False]

    claimed_first = metrics.enqueue("tests.fixtures.say_hello", "y")
    popped, queue = frozen.dequeue_job_and_maintain_ttl(timeout=1)
    assert rq_compat.claim_popped(frozen, queue, claimed_first.id) is True
    assert rq_compat.take_back_popped(redis_conn, "metrics", claimed_first.id) == -1  # its popper is starting it
    assert redis_conn.llen(rq_compat.queue_key("metrics")) == 0
    # Claimed and never started (the popper died between the two): pushed all the same, as a new push.
    assert rq_compat.take_back_popped(redis_conn, "metrics", claimed_first.id, even_claimed=True) == 1
    last, last_queue = other.dequeue_job_and_maintain_ttl(timeout=1)
    assert last.id == claimed_first.id and rq_compat.claim_popped(other, last_queue, last.id) is True


def test_crontab_warns_through_rq_scheduler_and_the_filter_quiets_it():
    """rq-scheduler's own next-run helper makes crontab warn; the project's filter silences exactly that."""
    import warnings

    from rq_scheduler.utils import get_next_scheduled_time

    from app.queueing.rq_compat.scheduler import quiet_crontab_future_warning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        get_next_scheduled_time("*/15 * * * *")
    assert any(issubclass(w.category, FutureWarning) and "crontab" in str(w.message) for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_crontab_future_warning()
        get_next_scheduled_time("*/15 * * * *")
        warnings.warn("another FutureWarning", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["another FutureWarning"]
