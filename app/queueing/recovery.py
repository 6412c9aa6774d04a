"""Recover jobs whose worker died mid-job, or that fell between two of RQ's steps.

- A job in a queue's started registry whose worker has no live key (liveness.py: the key of a
  dead worker expires within LIVENESS_TTL), or whose worker's process is seen dead on this host
  (liveness.gone_here) or stopped there FROZEN_SECONDS (then killed), goes back to the front of its queue, once: only the sweep whose ZREM
  removed the entry requeues it. A job that keeps killing its workers (say, out
  of memory) fails with a readable reason after MAX_ABANDONS.
- A job that says `queued`, sits in no list and kept a started entry (a run cut off by a Redis
  outage) goes back to its queue after two sightings STUCK_AFTER_SECONDS apart. One in no list
  without such an entry (a multi-queue worker's BLPOP answered while it was frozen) is the
  outbox reconciler's: it pushes it back after two sightings HANDOVER_SECONDS apart unless its
  popper claimed the push (outbox._take_back_swallowed, rq_compat.claim_popped).
- A job that sits in a queue's intermediate list (a one-queue worker's BLMOVE put it there and
  the worker froze or died before its start) goes back after two sightings HANDOVER_SECONDS
  apart: its popper claims it with the same atomic LREM before it starts it
  (rq_compat.claim_popped), so one of the two wins and the popper, thawed, drops it.

Sweeps run in every worker's maintenance and in the scheduler pass, under one lock held by token.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.results import Result

from . import catalog, keys, outcomes, rq_compat
from .connections import get_queue
from .jobclass import QueueingJob
from .liveness import LIVENESS_TTL, PROCESS_FIELD, end_stopped, gone_here, stopped_here
from .locks import TokenLock
from .outbox_ends import mark_ended
from .serialization import JobSerializer

logger = logging.getLogger(__name__)

# A job whose workers died running it this many times fails (a job that kills its worker: out of
# memory, a crash). Not fewer: a dead worker's job now runs again within a second or two, so a
# burst of kills (a host being drained, the fault suite's four kills in ten seconds) can land
# on the same healthy job several times.
MAX_ABANDONS = 5
# Short: the lock only spares Redis the same sweep from every worker at once; two sweeps that
# overlap are safe (each acts only where its own ZREM or LREM removed the entry), and a sweeper
# killed holding it holds every other sweep up LOCK_SECONDS at most
# (tests/test_declared_jobs.py::test_a_sweeper_killed_holding_the_lock_holds_the_sweeps_up_5_s_at_most).
LOCK_SECONDS = 5
STUCK_AFTER_SECONDS = 10
# A healthy worker claims what its pop moved into the intermediate list within milliseconds. Past
# this, its popper is frozen, dead or too slow to count on, and the job goes back to its queue at
# once; safe at any age, since the popper's claim and the take-back are the same atomic LREM and
# one of them wins (tests/faults/test_prompt_redelivery.py::test_a_take_back_racing_the_thawed_popper_runs_the_job_once).
HANDOVER_SECONDS = 2
# A worker process stopped (SIGSTOP) on the sweep's host this long, in two sightings, is killed
# and its job taken back (liveness.end_stopped): a lease of 12 s would hold the job that long.
FROZEN_SECONDS = 2


# Back to the queue only if it was still in the intermediate list (one atomic step).
_MOVE_BACK = "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then redis.call('LPUSH', KEYS[2], ARGV[1]) return 1 end return 0"


def _sweep_lock(connection: Redis) -> TokenLock:
    """One sweep at a time; renewed between queues (extend), so a slow sweep (a paused or busy
    Redis) keeps it and a killed one loses it in LOCK_SECONDS."""
    return TokenLock(connection, keys.SWEEP_LOCK, LOCK_SECONDS)


def sweep(connection: Redis, queue_names: list[str]) -> list[str]:
    """Requeue (or finally fail) jobs whose worker is gone or that fell between two of RQ's steps; returns their ids."""
    recovered: list[str] = []
    with _sweep_lock(connection) as lock:
        if not lock:
            return []  # another process is sweeping right now
        declared = catalog.queues()
        names = [name for name in queue_names if name in declared]
        for name in names:
            lock.extend()
            recovered.extend(_recover_started_entries(connection, get_queue(name)))
        for name in names:
            recovered.extend(_requeue_stuck_in_intermediate(connection, name))
    return recovered


def _recover_started_entries(connection: Redis, queue: Queue) -> list[str]:
    """Each entry of the queue's started registry whose run is over without an end: its job goes back."""
    recovered: list[str] = []
    for raw in cast("list[bytes]", connection.zrange(rq_compat.started_key(queue.name), 0, -1)):
        entry = raw.decode()
        job = QueueingJob.fetch_many([rq_compat.started_entry_job_id(entry)], connection=connection, serializer=JobSerializer)[0]
        if job is None:
            continue
        status = job.get_status(refresh=False)
        if status == JobStatus.SCHEDULED:
            found = _requeue_retry_cut_off(connection, queue, job, entry)
        elif status == JobStatus.QUEUED:
            found = _requeue_queued_in_no_queue(connection, queue, job, entry)
        elif status != JobStatus.STARTED:
            found = False
        elif job.worker_name and _worker_alive(connection, job.worker_name):
            _drop_entry_of_an_earlier_run(connection, queue, job, entry)
            found = False  # it runs on a live worker
        else:
            found = _take_back(connection, queue, job, entry, "was abandoned by dead worker")
        if found:
            recovered.append(job.id)
    return recovered


def _requeue_retry_cut_off(connection: Redis, queue: Queue, job: Job, entry: str) -> bool:
    """A job that says scheduled, waits in no scheduled registry and kept its started entry goes back
    once its worker is dead.

    RQ 3.0's Job.retry writes SCHEDULED at once, outside the failure's pipeline that then
    schedules the retry and removes this entry: a worker that died in between leaves that state,
    which every other check reads as held (tests/faults/test_death_on_this_host.py::
    test_a_retry_cut_off_between_rqs_two_writes_goes_back; RQ's order: tests/test_rq_compat.py::
    test_rq_writes_a_retrys_scheduled_status_before_the_failures_pipeline_runs).
    """
    if connection.zscore(rq_compat.scheduled_key(queue.name), job.id) is not None:
        return False  # a retry really scheduled
    if job.worker_name and _worker_alive(connection, job.worker_name):
        return False
    return _take_back(connection, queue, job, entry, "was cut off while its retry was recorded by")


def _requeue_queued_in_no_queue(connection: Redis, queue: Queue, job: Job, entry: str) -> bool:
    """A job that says queued but sits in no queue, its started entry left behind by a run that a
    Redis outage cut off, would wait forever: requeued at the second sighting STUCK_AFTER_SECONDS on."""
    if _waiting(connection, queue.name, job.id) or not seen_twice(connection, "started", job.id):
        return False
    if not connection.zrem(rq_compat.started_key(queue.name), entry):
        return False  # another sweep got there first
    rq_compat.requeue_at_front(queue, job)
    logger.warning("job %s was queued in no queue: requeued", job.id)
    return True


def _drop_entry_of_an_earlier_run(connection: Redis, queue: Queue, job: Job, entry: str) -> None:
    """A started job whose worker lives: an entry of an earlier run of it (its worker died, the job
    runs again on this live worker under another execution) is dropped.

    Left there, RQ's own registry cleanup would treat it as an abandoned run of a STARTED job once
    it expires, and retry the job while its new run goes on: the same job twice
    (tests/test_declared_jobs.py::test_an_earlier_runs_entry_is_dropped_so_rqs_cleanup_never_retries_the_running_job).
    Only then: a worker whose set of executions was lost (a FLUSHDB, its key written again without
    one) may be running this very entry, or be frozen with it; its lease decides, as for any other worker.
    """
    worker_name = cast("str", job.worker_name)
    executions = {raw.decode() for raw in cast("set[bytes]", connection.smembers(rq_compat.worker_executions_key(worker_name)))}
    if entry in executions:
        return  # its worker is alive and working on it
    if any(rq_compat.started_entry_job_id(other) == job.id for other in executions) and connection.zrem(rq_compat.started_key(queue.name), entry):
        logger.info("job %s: entry %s of an earlier run dropped (it runs on %s now)", job.id, entry, worker_name)


# A worker's key always carries its lease: RQ's heartbeats and the liveness thread (every
# LIVENESS_INTERVAL) set its TTL. But RQ writes single fields of it on their own (its state, its
# current job) with HSET, and after a FLUSHDB or a failover that lost the key such a write makes it
# again without a TTL. A worker frozen or killed before its next beat then kept that key for good:
# alive to every sweep, its job never recovered. Whoever reads such a key gives it the lease: a
# living worker renews it within LIVENESS_INTERVAL, a dead or frozen one loses it like any other.
# Returns {exists, the process field}.
_READ_LEASE = """
local ttl = redis.call('TTL', KEYS[1])
if ttl == -2 then return {0, false} end
if ttl == -1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {1, redis.call('HGET', KEYS[1], ARGV[2])}
"""


def _worker_alive(connection: Redis, name: str) -> bool:
    """A worker lives while its key does (liveness.py), unless its process ran in this kernel and
    pid namespace and is gone: then it is dead now, not when its key expires. One stopped there
    (SIGSTOP) in two sightings FROZEN_SECONDS apart is killed, and dead now too
    (tests/faults/test_prompt_redelivery.py::test_a_job_of_a_worker_stopped_mid_job_runs_elsewhere_within_seconds_and_once)."""
    exists, raw = cast("list[int | bytes | None]", connection.eval(_READ_LEASE, 1, rq_compat.worker_key(name), LIVENESS_TTL, PROCESS_FIELD))
    identity = raw.decode() if isinstance(raw, bytes) else None
    if not exists or gone_here(identity):
        return False
    if stopped_here(identity) and seen_twice(connection, "frozen", name, after=FROZEN_SECONDS) and end_stopped(identity):
        logger.warning("worker %s was stopped (SIGSTOP) mid-job on this host for %d s or more: killed", name, FROZEN_SECONDS)
        return False
    return True


def give_back(connection: Redis, queue: Queue, job: Job, why: str = "was stopped on its worker past the lease", detail: str = "") -> bool:
    """A worker whose run of `job` ended without an end of the job's own hands the job back:
    requeued at the front, as a sweep would, unless a sweep already did, or failed with `detail`
    after MAX_ABANDONS. Its lease lapsed while it ran it (it was frozen and stopped its copy), or
    its work-horse died (SIGKILL, the OOM killer, a segfault). Not a failure of the job: no retry
    is spent, no backoff waited (tests/faults/test_prompt_redelivery.py)."""
    started_key = rq_compat.started_key(queue.name)
    entries = [raw.decode() for raw in cast("list[bytes]", connection.zrange(started_key, 0, -1))]
    for entry in entries:
        if rq_compat.started_entry_job_id(entry) == job.id:
            return _take_back(connection, queue, job, entry, why, detail)
    return False  # a sweep requeued it already


def report_progress(done: int) -> None:
    """Called by a long job (a fan-out) as it goes: how many of its items it has done.

    The abandon limit tells a job that kills its workers (a crash loop) from one that is merely
    hit by worker deaths (a drained host, an outage: a bulk mail batch whose pool is killed six
    times in a few minutes). A job that moved on since its last abandon is no crash loop: its count
    starts again (tests/faults/test_death_on_this_host.py::
    test_a_job_that_moves_on_between_its_workers_deaths_is_not_failed_by_the_limit). Outside a job, a no-op.
    """
    from rq import get_current_job

    job = get_current_job()
    if job is not None:
        job.connection.set(keys.progress(job.id), int(done), ex=max(int(job.timeout or 0), 60) * 2)


def _take_back(connection: Redis, queue: Queue, job: Job, entry: str, why: str, detail: str = "") -> bool:
    """Requeue a started job at the front of its queue, or fail it after MAX_ABANDONS; only the
    caller whose ZREM removed the registry entry acts (another sweep got there first otherwise)."""
    if not connection.zrem(rq_compat.started_key(queue.name), entry):
        return False
    # The run that just ended reported progress if its key is there; taken away here, so the
    # next take-back sees only what the next run reports.
    if connection.delete(keys.progress(job.id)):
        abandons = 1  # it moved on since its last abandon: no crash loop
    else:
        abandons = int(job.meta.get("abandoned", 0)) + 1
    job.meta["abandoned"] = abandons
    # The ledger's entry for the run that ended so (outcome "abandoned"), in the same meta write;
    # the row gets it with its next write (a retry, the end, or the limit's below).
    outcomes.note_death(job, f"{why} {job.worker_name or 'its worker'}{': ' + detail if detail else ''}")
    job.save_meta()  # type: ignore[no-untyped-call]  # rq leaves it untyped
    if abandons > MAX_ABANDONS:
        reason = f"AbandonedJobError: its worker died {abandons} times while running it; not retried again"
        if detail:
            reason += f" (the last time: {detail})"  # a horse's death: its exit status or signal
        with connection.pipeline() as pipe:
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            FailedJobRegistry(queue.name, connection=connection, serializer=JobSerializer).add(
                job, ttl=job.failure_ttl, exc_string=reason, pipeline=pipe
            )
            # The reason operators read (failedjobs, the dashboards) is the latest result's.
            Result.create_failure(job, job.failure_ttl, reason, worker_name=job.worker_name or "", pipeline=pipe)
            pipe.execute()
        mark_ended(job.id, failed=True, reason=reason, ledger=outcomes.ledger(job))
        logger.error("job %s failed: %s", job.id, reason)
        return False
    rq_compat.requeue_at_front(queue, job)
    connection.hincrby(keys.ABANDONED_REQUEUES, queue.name, 1)  # for the alert on requeues
    logger.warning("job %s (%s) %s %s: requeued (%d/%d)", job.id, job.func_name, why, job.worker_name, abandons, MAX_ABANDONS)
    return True


def seen_twice(connection: Redis, detector: str, job_id: str, after: int = STUCK_AFTER_SECONDS) -> bool:
    """True from the second sighting at least `after` seconds after the first one (per detector)."""
    if after <= 0:
        return True
    seen_key = keys.stuck_seen(detector, job_id)
    if connection.set(seen_key, 1, nx=True, ex=after * 6):
        return False  # first sighting: give the worker time to register it
    if connection.ttl(seen_key) > after * 5:
        return False  # first seen less than `after` seconds ago
    connection.delete(seen_key)
    return True


LIST_CHUNK = 10_000


def orphans(connection: Redis, jobs: Sequence[tuple[str, str]], after: int = STUCK_AFTER_SECONDS) -> set[str]:
    """Of `jobs` ((job id, queue) whose hash says queued), those in no queue list, no hand-over
    list and no started registry, seen so twice.

    Each list is read once per call, in chunks, not scanned once per job: with 100,000 jobs
    waiting, a page's 500 LPOS scans cost Redis over half a second every pass (each blocking
    every other client), one read about 10 ms. Read in the order a job moves (queue, hand-over,
    started), so a job a worker moves meanwhile is seen in the next one; what still looks
    orphaned is only a first sighting, and the push re-checks in one step.
    """
    by_queue: dict[str, list[str]] = {}
    for job_id, name in jobs:
        by_queue.setdefault(name, []).append(job_id)
    held: set[str] = set()
    for name, ids in by_queue.items():
        left = set(ids)
        for key in (rq_compat.queue_key(name), rq_compat.intermediate_key(name)):
            start = 0
            while left:
                chunk = cast("list[bytes]", connection.lrange(key, start, start + LIST_CHUNK - 1))
                left.difference_update(raw.decode() for raw in chunk)
                if len(chunk) < LIST_CHUNK:
                    break
                start += LIST_CHUNK
        if left:
            members = cast("list[bytes]", connection.zrange(rq_compat.started_key(name), 0, -1))
            left.difference_update(rq_compat.started_entry_job_id(m) for m in members)
        held.update(set(ids) - left)
    if held:
        # Healthy now: a later sighting starts afresh (one call for the page).
        connection.delete(*(keys.stuck_seen(detector, job_id) for job_id in held for detector in ("outbox", "claimed")))
    return {job_id for job_id, _ in jobs if job_id not in held and seen_twice(connection, "outbox", job_id, after=after)}


def unbacked(connection: Redis, jobs: Sequence[tuple[str, str]], after: int = STUCK_AFTER_SECONDS) -> set[str]:
    """Of `jobs` ((job id, queue) whose hash says started or scheduled), those nothing holds, seen
    so twice: in no started registry entry, claimed by no running worker, in no scheduled
    registry, in no list.

    A take-back cut off between its ZREM and its push (the sweeper or Redis died between the two),
    or a worker's writes half lost with a Redis restart, leaves that: the sweep reads only the
    registries and RQ's scheduler only its own, so nothing else would ever run the job. Cost per
    pass: one ZRANGE per queue and one pipelined round trip for the claims and scheduled entries;
    the list scans only for what is left.
    """
    if not jobs:
        return set()
    running: dict[str, set[str]] = {}
    for name in {queue for _, queue in jobs}:
        members = cast("list[bytes]", connection.zrange(rq_compat.started_key(name), 0, -1))
        running[name] = {rq_compat.started_entry_job_id(m) for m in members}
    with connection.pipeline(transaction=False) as pipe:
        for job_id, name in jobs:
            pipe.exists(keys.running(job_id))
            pipe.zscore(rq_compat.scheduled_key(name), job_id)
        answers = pipe.execute()
    found: set[str] = set()
    healthy: list[str] = []
    for index, (job_id, name) in enumerate(jobs):
        claimed, scheduled = answers[2 * index], answers[2 * index + 1]
        if claimed or scheduled is not None or job_id in running[name] or _waiting(connection, name, job_id):
            healthy.append(keys.stuck_seen("unbacked", job_id))
        elif seen_twice(connection, "unbacked", job_id, after=after):
            found.add(job_id)
    if healthy:
        connection.delete(*healthy)  # held: a later sighting starts afresh (one round trip for the page)
    return found


def _waiting(connection: Redis, name: str, job_id: str) -> bool:
    return any(
        connection.lpos(key, job_id) is not None for key in (rq_compat.queue_key(name), rq_compat.intermediate_key(name))
    )


def _requeue_stuck_in_intermediate(connection: Redis, name: str) -> list[str]:
    """RQ 3 moves a dequeued job to `<queue>:intermediate` before registering it as started.

    A worker that dies, freezes (or loses Redis) between the two leaves the job there, still
    QUEUED; RQ's own cleanup fails it after a minute. A healthy hand-over takes milliseconds, so a
    queued job seen there in two sweeps HANDOVER_SECONDS apart goes back to the front of its
    queue; its popper, should it thaw, finds its claim gone (rq_compat.claim_popped) and drops it.
    """
    queue_key, intermediate_key = rq_compat.queue_key(name), rq_compat.intermediate_key(name)
    requeued = []
    for raw in cast("list[bytes]", connection.lrange(intermediate_key, 0, -1)):
        job_id = raw.decode()
        job = QueueingJob.fetch_many([job_id], connection=connection, serializer=JobSerializer)[0]
        if job is None or job.get_status(refresh=False) != JobStatus.QUEUED:
            continue
        if not seen_twice(connection, "intermediate", job_id, after=HANDOVER_SECONDS):
            continue
        if not connection.eval(_MOVE_BACK, 2, intermediate_key, queue_key, job_id):
            continue  # a worker took it meanwhile
        logger.warning("job %s (%s) was stuck between dequeue and start: requeued", job_id, job.func_name)
        requeued.append(job_id)
    return requeued
