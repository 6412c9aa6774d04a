"""Run a Procfile's processes, restart the one that dies, stop all on SIGINT/SIGTERM.

scripts/run's supervisor (honcho stops every process when one exits). Each Procfile line runs as
`sh -c "exec <command>"` in its own process group, its output prefixed with its name. A process
that exits is restarted after a backoff (1 s, doubling to 30 s; back to 1 s after 60 s of life);
after MAX_RESTARTS exits within RESTART_WINDOW seconds it is left down and the others keep running.
Tested by tests/test_dev_stack.py::test_a_killed_pool_restarts_and_sigint_stops_all.

    python scripts/lib/supervise.py [-f Procfile] [--only name,name]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0  # a process that lived this long restarts after FIRST_BACKOFF again
MAX_RESTARTS = 5
RESTART_WINDOW = 120.0
STOP_GRACE = 10.0

_print_lock = threading.Lock()


def say(name: str, width: int, line: str) -> None:
    with _print_lock:
        sys.stdout.write(f"{time.strftime('%H:%M:%S')} {name:<{width}} | {line}\n")
        sys.stdout.flush()


@dataclass
class Process:
    name: str
    command: str
    popen: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = 0.0  # the next restart's delay; 0: FIRST_BACKOFF
    restart_at: float | None = None
    exits: list[float] = field(default_factory=list)
    given_up: bool = False


def read_procfile(path: Path) -> list[Process]:
    processes = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, command = line.partition(":")
        processes.append(Process(name.strip(), command.strip()))
    return processes


class Supervisor:
    def __init__(self, processes: list[Process], cwd: Path) -> None:
        self.processes = processes
        self.cwd = cwd
        self.width = max(len(p.name) for p in processes) if processes else 0
        self.stopping = threading.Event()

    def log(self, line: str) -> None:
        say("system", self.width, line)

    def start(self, process: Process) -> None:
        process.popen = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {process.command}"],
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: Ctrl-C reaches the supervisor only, which stops each in order
        )
        process.started = time.monotonic()
        process.restart_at = None
        self.log(f"{process.name} started (pid {process.popen.pid})")
        threading.Thread(target=self.pump, args=(process, process.popen), daemon=True).start()

    def pump(self, process: Process, popen: subprocess.Popen[bytes]) -> None:
        assert popen.stdout is not None
        for raw in popen.stdout:
            say(process.name, self.width, raw.decode(errors="replace").rstrip("\n"))

    def exited(self, process: Process, code: int) -> None:
        now = time.monotonic()
        # What the process left in its group (a pool's children) goes with it.
        signal_group(process.popen, signal.SIGKILL)
        process.popen = None
        if now - process.started >= HEALTHY_AFTER or not process.backoff:
            process.backoff = FIRST_BACKOFF
        process.exits = [t for t in process.exits if now - t < RESTART_WINDOW] + [now]
        if len(process.exits) > MAX_RESTARTS:
            process.given_up = True
            self.log(f"{process.name} exited with {code}; {len(process.exits)} exits in {RESTART_WINDOW:.0f}s, giving up on it")
            return
        self.log(f"{process.name} exited with {code}; restarting in {process.backoff:g}s")
        process.restart_at = now + process.backoff
        process.backoff = min(process.backoff * 2, MAX_BACKOFF)

    def run(self) -> int:
        for process in self.processes:
            self.start(process)
        while not self.stopping.is_set():
            for process in self.processes:
                if process.popen is not None:
                    code = process.popen.poll()
                    if code is not None:
                        self.exited(process, code)
                elif process.restart_at is not None and time.monotonic() >= process.restart_at:
                    self.start(process)
            self.stopping.wait(0.2)
        return self.stop_all()

    def stop_all(self) -> int:
        running = [p for p in self.processes if p.popen is not None and p.popen.poll() is None]
        for process in running:
            self.log(f"stopping {process.name} (pid {process.popen.pid})")  # type: ignore[union-attr]
            signal_group(process.popen, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in running:
            assert process.popen is not None
            try:
                process.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(f"{process.name} still running after {STOP_GRACE:.0f}s: killing it")
            signal_group(process.popen, signal.SIGKILL)
        self.log("all stopped")
        return 0


def signal_group(popen: subprocess.Popen[bytes] | None, signum: int) -> None:
    if popen is None:
        return
    try:
        os.killpg(popen.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--procfile", default="Procfile", type=Path)
    parser.add_argument("--only", default="", help="comma-separated process names (default: all)")
    args = parser.parse_args(argv)
    processes = read_procfile(args.procfile)
    if args.only:
        wanted = set(args.only.split(","))
        processes = [p for p in processes if p.name in wanted]
    supervisor = Supervisor(processes, args.procfile.resolve().parent)

    def stop(signum: int, _frame: object) -> None:
        supervisor.log(f"{signal.Signals(signum).name} received, stopping all")
        supervisor.stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
