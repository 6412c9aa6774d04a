"""Where Redis holds one job, in one line: what the campaign records of a job that does not
move on (a pending row at the end of a seed, an abandoned job not re-run after 10 s)."""

from __future__ import annotations

from typing import Any


def describe(client: Any, job_id: str, queue: str | None = None) -> str:
    """The job's hash fields, every list, registry and claim that holds it, and its worker's key."""
    fields = client.hmget(f"rq:job:{job_id}", "status", "worker_name", "origin", "retries_left", "started_at", "ended_at")
    status, worker = fields[0], fields[1]
    queue = queue or (fields[2].decode() if fields[2] else "?")
    held = [
        where for where, found in (
            ("queue", client.lpos(f"rq:queue:{queue}", job_id) is not None),
            ("intermediate", client.lpos(f"rq:queue:{queue}:intermediate", job_id) is not None),
            ("scheduled", client.zscore(f"rq:scheduled:{queue}", job_id) is not None),
            ("claim", bool(client.exists(f"egoejo:running:{job_id}"))),
        ) if found
    ]
    held += [f"started {entry.decode()}" for entry in client.zrange(f"rq:wip:{queue}", 0, -1) if entry.decode().startswith(job_id)]
    about_worker = "has no key"
    if worker and client.exists(f"rq:worker:{worker.decode()}"):
        name = worker.decode()
        # A key without a TTL (-1) never expires by itself; its executions are what a sweep reads.
        executions = sorted(e.decode() for e in client.smembers(f"rq:worker:{name}:executions"))
        about_worker = (f"has a key (TTL {client.ttl(f'rq:worker:{name}')} s, state {client.hget(f'rq:worker:{name}', 'state')!r}, "
                        f"process {client.hget(f'rq:worker:{name}', 'egoejo_process')!r}, executions {executions})")
    return (f"{job_id} on {queue}: hash {[f.decode() if f else None for f in fields]}; held by {held or 'nothing'}; "
            f"its worker {about_worker}" + ("" if status else " (no hash)"))
