"""The real stack of one campaign seed: its own Redis (AOF), PostgreSQL database, SMTP sink, and the
project's four processes, each restarted 1 s after it dies (compose's `restart: always`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

from tests.e2e.processes import ROOT, stack_env
from tests.faults.servers import RedisServer
from tests.smtp import SmtpSink, free_port

PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
RESTART_DELAY = 1.0

# What runs, as in Procfile / docker-compose.yml (gunicorn in production).
COMMANDS: dict[str, list[str]] = {
    "web": ["-m", "gunicorn", "app.wsgi", "--workers", "2", "--timeout", "60", "--graceful-timeout", "5", "--no-control-socket"],
    # Two of each worker service, as docker-compose.yml runs them: with one images worker, a frozen
    # one held the queue alone (the second goal run's seed 12: 53 s before the job ran again); with
    # one pool, a killed pool parent took both members and held mail alone until its restart (14 s).
    "pool": ["manage.py", "rqpool", "emails", "metrics", "--workers", "2"],
    "pool-2": ["manage.py", "rqpool", "emails", "metrics", "--workers", "2"],
    "images": ["manage.py", "rqworker", "images", "--with-scheduler"],
    "images-2": ["manage.py", "rqworker", "images", "--with-scheduler"],
    "scheduler": ["manage.py", "rqscheduler"],
}


def pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def faketime_available() -> bool:
    return FAKETIME_LIB.exists()


@dataclass
class Supervised:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    deaths: list[float] = field(default_factory=list)  # wall-clock times a death was noticed
    orphans: list[int] = field(default_factory=list)  # processes of the group alive 1 s after the main one died
    restart_at: float | None = None

    def start(self) -> None:
        # Its own process group, like a container: when the main process dies, the runtime
        # kills whatever is left of the group before it starts the service again.
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, *self.argv], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def reap_group(self) -> list[int]:
        """Kill what is left of the dead main process's group; returns those pids."""
        assert self.process is not None
        left = group_members(self.process.pid)
        if left:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            found.extend(int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
        except FileNotFoundError:
            pass
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in out:
                out.append(child)
                todo.append(child)
    return out


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError, ProcessLookupError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


class ChaosStack:
    def __init__(self, directory: Path, seed: int) -> None:
        self.directory = directory
        self.seed = seed
        directory.mkdir(parents=True, exist_ok=True)
        self.logs = directory / "logs"
        self.logs.mkdir(exist_ok=True)
        self.database = f"chaos_{seed}_{os.getpid()}"
        self.database_url = f"postgres://postgres@127.0.0.1:5432/{self.database}"
        self.redis = RedisServer(directory / "redis", appendonly=True)
        self.sink = SmtpSink()
        self.sink.rcpt_delay = 0.1  # a mail spends time mid-transaction: kills land mid-job
        self.web_port = free_port()
        self.clock_file = directory / "web-clock"  # libfaketime's offset for the web, changed at run time
        self.clock_file.write_text("+0\n")
        self.processes: dict[str, Supervised] = {}
        self.paused: set[int] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._monitor: threading.Thread | None = None
        self.env: dict[str, str] = {}

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._create_database()
        self.redis.start()
        self.sink.start()
        self.env = stack_env(
            self.directory, self.redis.url, 2,
            DATABASE_URL=self.database_url, EMAIL_URL=f"smtp://127.0.0.1:{self.sink.port}", LOG_LEVEL="WARNING",
            # The whole load comes from one address, hundreds of members an hour: the throttles
            # (tested on their own in tests/security) would refuse most of it.
            THROTTLE_REGISTRATIONS_PER_IP="100000/hour", THROTTLE_UPLOADS_PER_USER="100000/hour",
            THROTTLE_CONTRIBUTIONS_PER_USER="100000/hour",
        )
        self.env.pop("CI", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=self.env, check=True,
                       capture_output=True, timeout=300)
        for name, argv in COMMANDS.items():
            env = dict(self.env)
            if name == "web":
                argv = [*argv, "--bind", f"127.0.0.1:{self.web_port}"]
                if faketime_available():
                    env.update(LD_PRELOAD=str(FAKETIME_LIB), FAKETIME_TIMESTAMP_FILE=str(self.clock_file),
                               FAKETIME_CACHE_DURATION="1")  # monotonic faked too: libfaketime 0.9.10 fails sleeps otherwise
            self.processes[name] = Supervised(name, argv, env, self.logs / f"{name}.log")
            self.processes[name].start()
        self._monitor = threading.Thread(target=self._supervise, daemon=True, name="supervisor")
        self._monitor.start()

    def _supervise(self) -> None:
        while not self._stop.wait(0.1):
            now = time.time()
            with self._lock:
                for proc in self.processes.values():
                    if proc.process is None:
                        continue
                    if proc.process.poll() is not None and proc.restart_at is None:
                        proc.deaths.append(now)
                        proc.restart_at = now + RESTART_DELAY
                    if proc.restart_at is not None and now >= proc.restart_at:
                        proc.restart_at = None
                        proc.orphans.extend(proc.reap_group())
                        proc.start()

    def stop(self) -> None:
        self._stop.set()
        if self._monitor:
            self._monitor.join(timeout=5)
        for pid in list(self.paused):
            self.resume(pid)
        tree: list[int] = []
        for proc in self.processes.values():
            if proc.process and proc.process.poll() is None:
                tree.extend(descendants(proc.process.pid))
                proc.process.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            if proc.process:
                try:
                    proc.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.process.kill()
                    proc.process.wait()
                proc.reap_group()
        for pid in tree:  # whatever a killed parent left behind (the campaign reports orphans separately)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def teardown(self, keep: bool = False) -> None:
        try:
            self.sink.stop()
        except Exception:  # noqa: BLE001
            pass
        self.redis.stop()
        self._drop_database()
        if not keep:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- PostgreSQL ---------------------------------------------------------------------------

    def _create_database(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def _drop_database(self) -> None:
        try:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        except psycopg.Error:
            pass

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    # -- Redis --------------------------------------------------------------------------------

    def redis_client(self) -> redis.Redis:
        return redis.Redis.from_url(f"{self.redis.url}/2", socket_timeout=5, socket_connect_timeout=2)

    # -- processes ----------------------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        with self._lock:
            return self.processes[name].pid

    def pause(self, pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        self.paused.add(pid)

    def resume(self, pid: int) -> None:
        self.paused.discard(pid)
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def all_pids(self) -> set[int]:
        out: set[int] = set()
        for name in self.processes:
            pid = self.pid(name)
            if pid:
                out.add(pid)
                out.update(descendants(pid))
        return out

    def process_states(self) -> str:
        """Each process of the stack: its state and, per thread, where the kernel has it waiting;
        with py-spy on PATH, its Python stacks too. For a seed that never became quiescent."""
        lines = []
        spy = shutil.which("py-spy")
        for name, proc in self.processes.items():
            if proc.process is None:
                continue
            for pid in [proc.process.pid, *descendants(proc.process.pid)]:
                try:
                    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                    waits = {t: Path(f"/proc/{pid}/task/{t}/wchan").read_text() for t in os.listdir(f"/proc/{pid}/task")}
                except OSError:
                    continue
                lines.append(f"{name} pid {pid} state {state} threads waiting in {waits}{' (paused by the campaign)' if pid in self.paused else ''}")
                if spy:
                    dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30)
                    lines.append(dump.stdout + dump.stderr)
        return "\n".join(lines)

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in sorted(self.logs.glob("*.log")))
