"""The chaos campaign's invariants, one function each: what a run left (SQL, the SMTP sink, files
on disk, Redis) read job by job, so that each committed job had exactly one effect and a
rolled-back one none. `check()` runs them all on a quiescent stack (benchmarks/chaos/campaign.py
after each seed; tests/faults/test_chaos.py asserts its verdict; tests/test_chaos_invariants.py
tests the fault-log arithmetic).

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
from typing import TYPE_CHECKING, Any

import redis

from benchmarks.chaos.faults import CLIENT_PAUSE_SECONDS, REDIS_DOWN_SECONDS, Abandoned, FaultLog

if TYPE_CHECKING:
    from benchmarks.chaos.stack import ChaosStack

WELCOME = "app.jobs.emails.send_welcome_email"
CONFIRMATION = "app.jobs.emails.send_confirmation_email"
BULK = "app.jobs.emails.send_bulk_email"
RENDITIONS = ("display", "display_webp", "thumbnail")  # the names clients get (app/services/images/renditions.py)

Job = tuple[str, Any, str, str]  # (func, args, state, failure_reason) of an outbox row
MailKey = tuple[str, str]  # (job id, recipient in lower case)


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


@dataclass(frozen=True)
class Outcome:
    """What the run left that several invariants read: accounts, outbox rows, sent-mail rows, deliveries."""

    users: dict[int, tuple[str, bool]]  # id -> (email, is_active)
    jobs: dict[str, Job]
    sent_rows: dict[str, tuple[str, str, str, int]]  # Message-ID -> (job, recipient, state, attempts)
    delivered: list[tuple[str, str]]  # (recipient, Message-ID), one per delivery
    refused_550: set[str]  # recipients the sink refused with a 550

    @property
    def deliveries(self) -> Counter[MailKey]:
        by_key: Counter[MailKey] = Counter()
        for rcpt, message_id in self.delivered:
            by_key[(message_id.strip("<>").split(".", 1)[0], rcpt.lower())] += 1
        return by_key

    def sent_row(self, job_id: str, rcpt: str) -> tuple[str, str, str, int] | None:
        domain = next((mid.split("@", 1)[1].rstrip(">") for _, mid in self.delivered), "egoejo.org")
        return self.sent_rows.get(f"<{job_id}.{_digest(rcpt)}@{domain}>")


def _digest(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:16]


def read_outcome(stack: ChaosStack) -> Outcome:
    sql = stack.sql
    users = {uid: (email, active) for uid, email, active in sql("SELECT id, email, is_active FROM auth_user")}
    jobs = {jid: (func, args, state, reason) for jid, func, args, state, reason in
            sql("SELECT id, func, args, state, failure_reason FROM egoejo_backgroundjob")}
    try:
        rows = sql("SELECT message_id, job_id, recipient, state, attempts FROM egoejo_sentmail")
    except Exception:  # noqa: BLE001 - a schema from before the mail policy (every row: sent once)
        rows = [(*row, "sent", 1) for row in sql("SELECT message_id, job_id, recipient FROM egoejo_sentmail")]
    sent_rows = {mid: (job, rcpt, state, attempts) for mid, job, rcpt, state, attempts in rows}
    with stack.sink.lock:
        delivered = [(rcpt, str(message["Message-ID"])) for rcpts, message in stack.sink.messages for rcpt in rcpts]
        refused_550 = {rcpt.lower() for rcpt, fault, _ in stack.sink.refusals if fault == "550"}
    return Outcome(users, jobs, sent_rows, delivered, refused_550)


def check(stack: ChaosStack, faults: FaultLog) -> Report:
    """Every invariant of a quiescent stack but the rolled-back one (`rolled_back_left_nothing`)."""
    report = Report()
    outcome = read_outcome(stack)
    expected = expected_mails(outcome)
    no_mail_lost(report, outcome, expected)
    no_mail_duplicated(report, outcome, expected)
    no_mail_without_a_committed_job(report, outcome, expected)
    report.figures["mails expected"] = len(expected)
    report.figures["mails delivered"] = len(outcome.delivered)
    every_upload_rendered_once(report, stack, outcome.jobs)
    no_stray_rendition_files(report, stack)
    dashboards_match_contributions(report, stack)
    report.figures["outbox rows"] = dict(Counter(state for _, _, state, _ in outcome.jobs.values()))
    no_job_failed(report, outcome.jobs)
    no_job_ran_twice(report, stack, outcome.jobs, faults)
    nothing_unfinished_at_quiescence(report, stack)
    abandoned_jobs_were_rerun(report, outcome.jobs, faults)
    rerun_timings(report, outcome.jobs, faults)
    return report


# -- mail: each committed mail delivered once, per its kind's policy ----------------------------


def expected_mails(outcome: Outcome) -> dict[MailKey, str]:
    """(job, recipient) -> policy, for every mail a committed job owes."""
    users = outcome.users
    expected: dict[MailKey, str] = {}
    for job_id, (func, args, _state, _reason) in outcome.jobs.items():
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
    return expected


def no_mail_lost(report: Report, outcome: Outcome, expected: dict[MailKey, str]) -> None:
    """A mail owed and never delivered is a violation, unless its policy or a 550 accounts for it."""
    by_key = outcome.deliveries
    for (job_id, rcpt), policy in expected.items():
        if by_key.get((job_id, rcpt), 0):
            continue
        row = outcome.sent_row(job_id, rcpt)
        state = outcome.jobs[job_id][2]
        if policy == "at-most-once" and row and row[2] == "attempting":
            report.apart["at-most-once: not delivered, attempt unfinished (policy: lost)"] += 1
        elif rcpt in outcome.refused_550 and (state == "failed" or policy == "at-most-once"):
            report.expected_failures["mail refused with 550 (fails once, by design)"] += 1
        elif state == "pending":
            report.violation("mail not delivered (job still pending)", f"job {job_id} to {rcpt}")
        else:
            report.violation("lost mail", f"job {job_id} ({policy}) to {rcpt}: job {state} {outcome.jobs[job_id][3][:120]!r}, row {row}")


def no_mail_duplicated(report: Report, outcome: Outcome, expected: dict[MailKey, str]) -> None:
    """A mail delivered more than once is a violation, unless it is an at-least-once re-send after an unfinished attempt."""
    by_key = outcome.deliveries
    for (job_id, rcpt), policy in expected.items():
        count = by_key.get((job_id, rcpt), 0)
        if count <= 1:
            continue
        row = outcome.sent_row(job_id, rcpt)
        if policy == "at-least-once" and row and row[3] > 1:
            report.apart["at-least-once: delivered again after an unfinished attempt (policy: duplicate)"] += count - 1
        else:
            report.violation("duplicate mail", f"job {job_id} ({policy}) to {rcpt}: {count} deliveries, row {row}")


def no_mail_without_a_committed_job(report: Report, outcome: Outcome, expected: dict[MailKey, str]) -> None:
    for (job_id, rcpt), count in outcome.deliveries.items():
        if (job_id, rcpt) not in expected:
            report.violation("mail of no committed job", f"job {job_id} to {rcpt}: {count} deliveries")


# -- images: each upload's one current rendition set, nothing else on disk ----------------------


def _media(stack: ChaosStack) -> Path:
    return Path(stack.env["EGOEJO_VAR_DIR"]) / "media"


def every_upload_rendered_once(report: Report, stack: ChaosStack, jobs: dict[str, Job]) -> None:
    """Each upload has its job, every rendition published as a file, and one version of them."""
    media = _media(stack)
    images = stack.sql("SELECT original_path, status, job_id, renditions FROM egoejo_uploadedimage")
    for original, status, job_id, published in images:
        stem = Path(original).stem
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
    report.figures["images"] = len(images)


def no_stray_rendition_files(report: Report, stack: ChaosStack) -> None:
    """No rendition directory of an upload that was never committed, no half-written file."""
    renditions = _media(stack) / "uploads" / "renditions"
    stems = {Path(original).stem for (original,) in stack.sql("SELECT original_path FROM egoejo_uploadedimage")}
    for directory in renditions.glob("*"):
        if directory.name not in stems:
            report.violation("rendition of no committed upload", directory.name)
    leftovers = list(renditions.glob("**/.*.tmp"))
    if leftovers:
        report.violation("half-written file", ", ".join(p.name for p in leftovers[:5]))


# -- dashboards ---------------------------------------------------------------------------------


def dashboards_match_contributions(report: Report, stack: ChaosStack) -> None:
    """Each member's dashboard equals an independent computation from the contributions."""
    sql = stack.sql
    sums = {uid: (Decimal(total), count) for uid, total, count in
            sql("SELECT user_id, SUM(amount), COUNT(*) FROM egoejo_contribution GROUP BY user_id")}
    boards = {uid: (Decimal(total), count) for uid, total, count in
              sql("SELECT user_id, total_contributed, contributions_count FROM egoejo_impactdashboard")}
    for uid, (total, count) in sums.items():
        if boards.get(uid) != (total, count):
            report.violation("dashboard differs from the contributions", f"user {uid}: {boards.get(uid)} != {(total, count)}")
    report.figures["contributors"] = len(sums)


# -- jobs ---------------------------------------------------------------------------------------


def no_job_failed(report: Report, jobs: dict[str, Job]) -> None:
    """No job failed, but those refused with a 550 (they fail once, by design)."""
    for job_id, (func, _args, state, reason) in jobs.items():
        if state == "failed" and "550" not in reason:
            report.violation("job failed", f"{job_id} {func}: {reason.strip().splitlines()[-1][:160] if reason.strip() else ''}")


def no_job_ran_twice(report: Report, stack: ChaosStack, jobs: dict[str, Job], faults: FaultLog) -> None:
    """A job that succeeded twice ran twice (a double push, a lease without fencing), whether or
    not its effect was deduplicated: RQ keeps each run's result (rq:results:<id>, 10 at most)."""
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


def nothing_unfinished_at_quiescence(report: Report, stack: ChaosStack) -> None:
    """No outbox row pending, no job queued or started once the stack is quiet."""
    q = quiescence(stack)
    report.figures["at quiescence"] = q
    if q["pending_rows"]:
        report.violation("pending outbox rows at quiescence", str(q["pending_rows"]))
    if q["queued"] or q["started"]:
        report.violation("jobs queued/started at quiescence", f"{q['queued']} queued, {q['started']} started")


# -- abandoned jobs: re-run, and how soon after their worker's death -----------------------------


def _abandoned(faults: FaultLog) -> list[Abandoned]:
    return [a for a in faults.abandoned if not a.finished_before]


def abandoned_jobs_were_rerun(report: Report, jobs: dict[str, Job], faults: FaultLog) -> None:
    """A job whose worker died mid-run ran again, unless its row ended (it had finished its work)."""
    for a in _abandoned(faults):
        if a.rerun_after is None:
            job = jobs.get(a.job_id)
            if job is None or job[2] == "pending":
                report.violation("abandoned job never re-run", f"{a.job_id} after {a.kind}")


def rerun_timings(report: Report, jobs: dict[str, Job], faults: FaultLog) -> None:
    """Figures only: how soon abandoned jobs ran again, and what the slowest waited through."""
    abandoned = _abandoned(faults)
    reruns = [a.rerun_after for a in abandoned if a.rerun_after is not None]
    report.figures["abandoned jobs"] = len(abandoned)
    report.figures["worst re-run after the fault, s"] = round(max(reruns), 1) if reruns else None
    by_kind: dict[str, list[float]] = defaultdict(list)
    for a in abandoned:
        if a.rerun_after is not None:
            by_kind[a.kind].append(a.rerun_after)
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


# -- rolled-back transactions ---------------------------------------------------------------------


def rolled_back_left_nothing(report: Report, stack: ChaosStack, job_ids: list[str]) -> None:
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
