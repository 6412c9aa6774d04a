"""The invariant checker: reads what the run left (SQL, the SMTP sink, files on disk, Redis) and
says, job by job, whether each committed job had exactly one effect and a rolled-back one none.

Mail policy (docs/mail.md): transactional mail (confirmation, welcome) is at-least-once, fan-outs at-most-once.
A mail whose sender was cut off between DATA and the record of the 250 is counted apart:
a duplicate of an at-least-once kind whose row shows more than one attempt, or a loss of an
at-most-once kind whose row is still `attempting`, follows the policy; anything else is a violation.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis

from . import job_state
from .faults import CLIENT_PAUSE_SECONDS, REDIS_DOWN_SECONDS, FaultLog
from .stack import ChaosStack

WELCOME = "app.jobs.emails.send_welcome_email"
CONFIRMATION = "app.jobs.emails.send_confirmation_email"
BULK = "app.jobs.emails.send_bulk_email"
RENDITIONS = ("display", "display_webp", "thumbnail")  # the names clients get (app/services/images.py)


@dataclass
class Report:
    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail)
    apart: Counter[str] = field(default_factory=Counter)  # the uncertain window, per policy
    expected_failures: Counter[str] = field(default_factory=Counter)

    def violation(self, kind: str, detail: str) -> None:
        self.violations.append((kind, detail))

    @property
    def counts(self) -> Counter[str]:
        return Counter(kind for kind, _ in self.violations)


def _digest(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:16]


def quiescence(stack: ChaosStack) -> dict[str, int]:
    """What is still unfinished: outbox rows pending, jobs queued or started in Redis."""
    pending = stack.sql("SELECT count(*) FROM egoejo_backgroundjob WHERE state = 'pending'")[0][0]
    queued = started = scheduled = 0
    try:
        client = stack.redis_client()
        for name in ("emails", "images", "metrics"):
            queued += client.llen(f"rq:queue:{name}") + client.llen(f"rq:queue:{name}:intermediate")
            started += client.zcard(f"rq:wip:{name}")
            scheduled += client.zcard(f"rq:scheduled:{name}")
    except redis.RedisError:
        queued = started = -1
    return {"pending_rows": pending, "queued": queued, "started": started, "retries_waiting": scheduled}


def unfinished_jobs(stack: ChaosStack) -> str:
    """For a seed that never became quiescent: where Redis holds each pending row's job, read
    before the seed's Redis is gone (the sixth goal run's seed 23 left one job unexplained)."""
    lines = []
    pending = stack.sql("SELECT id, queue, func FROM egoejo_backgroundjob WHERE state = 'pending' ORDER BY id LIMIT 20")
    try:
        client = stack.redis_client()
        for job_id, queue, func in pending:
            lines.append(f"{func}: {job_state.describe(client, job_id, queue)}")
    except redis.RedisError as exc:
        lines.append(f"Redis could not be read: {exc}")
    return "\n".join(lines)


def check(stack: ChaosStack, faults: FaultLog) -> Report:
    report = Report()
    sql = stack.sql
    users = {uid: (email, active) for uid, email, active in sql("SELECT id, email, is_active FROM auth_user")}
    jobs = {jid: (func, args, state, reason) for jid, func, args, state, reason in
            sql("SELECT id, func, args, state, failure_reason FROM egoejo_backgroundjob")}
    try:
        rows = sql("SELECT message_id, job_id, recipient, state, attempts FROM egoejo_sentmail")
    except Exception:  # noqa: BLE001 - a schema from before the mail policy (every row: sent once)
        rows = [(*row, "sent", 1) for row in sql("SELECT message_id, job_id, recipient FROM egoejo_sentmail")]
    sent_rows = {mid: (job, rcpt, state, attempts) for mid, job, rcpt, state, attempts in rows}

    # -- mail -------------------------------------------------------------------------------
    with stack.sink.lock:
        delivered = [(rcpt, str(message["Message-ID"])) for rcpts, message in stack.sink.messages for rcpt in rcpts]
        refused = {(rcpt, fault) for rcpt, fault, _ in stack.sink.refusals}
    by_key: Counter[tuple[str, str]] = Counter()
    for rcpt, message_id in delivered:
        job_id = message_id.strip("<>").split(".", 1)[0]
        by_key[(job_id, rcpt.lower())] += 1
    refused_550 = {rcpt.lower() for rcpt, fault in refused if fault == "550"}

    expected: dict[tuple[str, str], str] = {}  # (job, recipient) -> policy
    for job_id, (func, args, _state, _reason) in jobs.items():
        if func == WELCOME:
            user = users.get(args[0])
            if user and user[1]:
                expected[(job_id, user[0].lower())] = "at-least-once"
        elif func == CONFIRMATION:
            # Sent while the account waits for it; a member is only ever confirmed through it.
            user = users.get(args[0])
            if user:
                expected[(job_id, user[0].lower())] = "at-least-once"
        elif func == BULK:
            for uid in args[1]:
                user = users.get(uid)
                if user and user[1]:
                    expected[(job_id, user[0].lower())] = "at-most-once"
    domain = next((mid.split("@", 1)[1].rstrip(">") for _, mid in delivered), "egoejo.org")
    for (job_id, rcpt), policy in expected.items():
        count = by_key.get((job_id, rcpt), 0)
        row = sent_rows.get(f"<{job_id}.{_digest(rcpt)}@{domain}>")
        state = jobs[job_id][2]
        if count == 1:
            continue
        if count == 0:
            if policy == "at-most-once" and row and row[2] == "attempting":
                report.apart["at-most-once: not delivered, attempt unfinished (policy: lost)"] += 1
            elif rcpt in refused_550 and (state == "failed" or policy == "at-most-once"):
                report.expected_failures["mail refused with 550 (fails once, by design)"] += 1
            elif state == "pending":
                report.violation("mail not delivered (job still pending)", f"job {job_id} to {rcpt}")
            else:
                report.violation("lost mail", f"job {job_id} ({policy}) to {rcpt}: job {state} {jobs[job_id][3][:120]!r}, row {row}")
        else:
            if policy == "at-least-once" and row and row[3] > 1:
                report.apart["at-least-once: delivered again after an unfinished attempt (policy: duplicate)"] += count - 1
            else:
                report.violation("duplicate mail", f"job {job_id} ({policy}) to {rcpt}: {count} deliveries, row {row}")
    for (job_id, rcpt), count in by_key.items():
        if (job_id, rcpt) not in expected:
            report.violation("mail of no committed job", f"job {job_id} to {rcpt}: {count} deliveries")
    report.figures["mails expected"] = len(expected)
    report.figures["mails delivered"] = len(delivered)

    # -- images -----------------------------------------------------------------------------
    media = Path(stack.env["EGOEJO_VAR_DIR"]) / "media"
    images = sql("SELECT original_path, status, job_id, renditions FROM egoejo_uploadedimage")
    stems = set()
    for original, status, job_id, published in images:
        stem = Path(original).stem
        stems.add(stem)
        published = json.loads(published) if isinstance(published, str) else (published or {})
        # Each published rendition is a file under the image's one current version; no other
        # version is left beside it (a superseded set is deleted once the new one is published).
        present = {name for name, entry in published.items() if (media / entry.get("key", "?")).is_file()}
        versions = [d.name for d in (media / "uploads" / "renditions" / stem).glob("*") if d.is_dir()]
        if job_id not in jobs:
            report.violation("image without its job", f"{original}")
        elif status != "done" or present != set(RENDITIONS):
            report.violation("lost image rendition", f"{original}: status {status}, published {sorted(present)}, job {jobs[job_id][2]}")
        elif len(versions) != 1:
            report.violation("superseded rendition set left behind", f"{original}: versions {versions}")
    for directory in (media / "uploads" / "renditions").glob("*"):
        if directory.name not in stems:
            report.violation("rendition of no committed upload", directory.name)
    leftovers = list((media / "uploads" / "renditions").glob("**/.*.tmp"))
    if leftovers:
        report.violation("half-written file", ", ".join(p.name for p in leftovers[:5]))
    report.figures["images"] = len(images)

    # -- dashboards: equal to an independent computation from the contributions ----------------
    sums = {uid: (Decimal(total), count) for uid, total, count in
            sql("SELECT user_id, SUM(amount), COUNT(*) FROM egoejo_contribution GROUP BY user_id")}
    boards = {uid: (Decimal(total), count) for uid, total, count in
              sql("SELECT user_id, total_contributed, contributions_count FROM egoejo_impactdashboard")}
    for uid, (total, count) in sums.items():
        if boards.get(uid) != (total, count):
            report.violation("dashboard differs from the contributions", f"user {uid}: {boards.get(uid)} != {(total, count)}")
    report.figures["contributors"] = len(sums)

    # -- jobs -------------------------------------------------------------------------------
    states = Counter(state for _, _, state, _ in jobs.values())
    report.figures["outbox rows"] = dict(states)
    for job_id, (func, _args, state, reason) in jobs.items():
        if state == "failed" and "550" not in reason:
            report.violation("job failed", f"{job_id} {func}: {reason.strip().splitlines()[-1][:160] if reason.strip() else ''}")
    # A job that succeeded twice ran twice (a double push, a lease without fencing), whether or
    # not its effect was deduplicated: RQ keeps each run's result (rq:results:<id>, 10 at most).
    try:
        client = stack.redis_client()
        with client.pipeline(transaction=False) as pipe:
            ids = list(jobs)
            for job_id in ids:
                pipe.xrange(f"rq:results:{job_id}")
            streams = pipe.execute()
        twice = 0
        for job_id, entries in zip(ids, streams, strict=True):
            successes = [(int(sid.split(b"-")[0]) / 1000, e) for sid, e in entries if e.get(b"type") == b"1"]
            if len(successes) > 1:
                twice += 1
                workers = sorted({e.get(b"worker_name", b"").decode()[:8] for _, e in successes})
                # The faults of the minute before the second run: where to look first.
                near = sorted({kind for at, kind, _ in faults.events if successes[-1][0] - 60 <= at <= successes[-1][0]})
                report.violation(
                    "job succeeded twice (ran twice)",
                    f"{job_id} {jobs[job_id][0]}: {len(successes)} runs on {workers}, "
                    f"{successes[-1][0] - successes[0][0]:.1f} s apart; faults in the minute before: {near}",
                )
        report.figures["jobs that ran twice"] = twice
    except redis.RedisError as exc:
        report.figures["jobs that ran twice"] = f"unknown ({exc})"
    q = quiescence(stack)
    report.figures["at quiescence"] = q
    if q["pending_rows"]:
        report.violation("pending outbox rows at quiescence", str(q["pending_rows"]))
    if q["queued"] or q["started"]:
        report.violation("jobs queued/started at quiescence", f"{q['queued']} queued, {q['started']} started")

    # -- abandoned jobs: re-run how soon after their worker's death ------------------------------
    abandoned = [a for a in faults.abandoned if not a.finished_before]
    reruns = [a.rerun_after for a in abandoned if a.rerun_after is not None]
    report.figures["abandoned jobs"] = len(abandoned)
    report.figures["worst re-run after the fault, s"] = round(max(reruns), 1) if reruns else None
    by_kind: dict[str, list[float]] = defaultdict(list)
    for a in abandoned:
        if a.rerun_after is not None:
            by_kind[a.kind].append(a.rerun_after)
        else:
            job = jobs.get(a.job_id)
            if job is None or job[2] == "pending":
                report.violation("abandoned job never re-run", f"{a.job_id} after {a.kind}")
    report.figures["worst re-run by fault, s"] = {k: round(max(v), 1) for k, v in sorted(by_kind.items())}
    timed = [a for a in abandoned if a.rerun_after is not None]
    if timed:
        # The same wait less the seconds in which Redis served no client at all (down after a
        # kill, or under CLIENT PAUSE): the part the project's detectors and workers had.
        report.figures["worst re-run while Redis served, s"] = round(
            max((a.rerun_after or 0.0) - redis_unavailable(faults.events, a.at, a.at + (a.rerun_after or 0.0)) for a in timed), 1
        )
        # What the slowest re-run waited through: the faults from its own to its next start.
        worst = max(timed, key=lambda a: a.rerun_after or 0.0)
        end = worst.at + (worst.rerun_after or 0.0)
        meanwhile = [f"+{t - worst.at:.1f} s {kind} {detail}".strip() for t, kind, detail in faults.events if worst.at - 1 <= t <= end]
        func = jobs[worst.job_id][0] if worst.job_id in jobs else "?"
        report.figures["slowest re-run"] = f"{worst.job_id} ({func}) after {worst.kind}; faults from it to the re-run: {meanwhile}"
        report.figures["slowest re-run: Redis down or paused for, s"] = round(redis_unavailable(faults.events, worst.at, end), 1)
        if worst.waiting_in:
            report.figures["slowest re-run waited in"] = worst.waiting_in
    return report


def redis_unavailable(events: list[tuple[float, str, str]], start: float, end: float) -> float:
    """Seconds of [start, end] in which Redis served no client: from a kill until it is started
    again, and CLIENT PAUSEs. Overlapping outages are counted once."""
    spans = sorted(
        (at, at + (REDIS_DOWN_SECONDS if kind == "redis_restart" else CLIENT_PAUSE_SECONDS))
        for at, kind, _ in events
        if kind in ("redis_restart", "redis_client_pause")
    )
    total, covered_to = 0.0, start
    for begins, ends in spans:
        begins, ends = max(begins, covered_to), min(ends, end)
        if ends > begins:
            total += ends - begins
            covered_to = ends
    return total


def check_rolled_back(stack: ChaosStack, report: Report, job_ids: list[str]) -> None:
    """A job enqueued in a transaction that rolled back has no row, no job in Redis and no effect."""
    report.figures["jobs enqueued in rolled-back transactions"] = len(job_ids)
    if not job_ids:
        return
    rows = stack.sql("SELECT id FROM egoejo_backgroundjob WHERE id = ANY(%s)", [job_ids])
    for (job_id,) in rows:
        report.violation("row of a rolled-back job", job_id)
    try:
        client = stack.redis_client()
        for job_id in job_ids:
            if client.exists(f"rq:job:{job_id}"):
                report.violation("rolled-back job pushed to Redis", job_id)
    except redis.RedisError as exc:
        report.violation("rolled-back jobs not checked in Redis", str(exc))
    with stack.sink.lock:
        ids = {str(message["Message-ID"]).strip("<>").split(".", 1)[0] for _, message in stack.sink.messages}
    for job_id in set(job_ids) & ids:
        report.violation("mail of a rolled-back job", job_id)
