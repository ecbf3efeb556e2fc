"""The production recipe as test processes: ``abm worker`` and ``abm scheduler``, started
exactly as the README says (the CLI, all queues), pointed at the test's database and
Redis, each in a process group of its own so that a test can SIGKILL one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Abm:
    """``abm <args>`` as a child process of the test."""

    def __init__(self, app, *args: str, **env: str):
        environ = dict(os.environ, ABM_DATABASE_URL=app.config["DATABASE_URL"], ABM_REDIS_URL=app.config["REDIS_URL"],
                       ABM_INSTANCE_PATH=app.instance_path, ABM_ENV="testing", **env)
        self.proc = subprocess.Popen([sys.executable, "-c", "from abm.cli import main; main(prog_name='abm')", *args],
                                     cwd=ROOT, env=environ, start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def alive(self) -> bool:
        return self.proc.poll() is None


class Recipe:
    """``abm worker`` (``workers`` of them) and ``abm scheduler``; stopped at the end."""

    def __init__(self, app, workers: int = 1, scheduler: bool = True, **env: str):
        self.workers = [Abm(app, "worker", **env) for _ in range(workers)]
        self.scheduler = Abm(app, "scheduler", **env) if scheduler else None

    def __enter__(self) -> Recipe:
        return self

    def __exit__(self, *exc) -> None:
        for proc in [*self.workers, *([self.scheduler] if self.scheduler else [])]:
            proc.kill(signal.SIGKILL)


def wait_for(predicate, timeout: float, what: str, every: float = 0.05) -> float:
    """Poll until ``predicate()``; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.monotonic()
