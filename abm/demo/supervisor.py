"""Child processes for ``abm demo``: start them, watch them, stop them with nothing left over.

Every child runs in its own session, so a Ctrl-C on the terminal reaches only the demo,
which then stops the children in order: SIGTERM (RQ workers finish their job), a second
SIGTERM after a grace period (RQ's cold shutdown stops its work horse), SIGKILL last.
Before stopping, the demo notes every descendant (gunicorn's workers, RQ's work
horses, which live in process groups of their own) and kills any that outlive their
parent. On Linux each child also gets SIGTERM if the demo itself dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import collections
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from abm.redis_conn import EmbeddedRedis

TAIL_LINES = 15


def _load_libc():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


#: Loaded here, not in the child: a forked child of a threaded process should do little.
_LIBC = _load_libc() if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (PR_SET_PDEATHSIG)."""
    _LIBC.prctl(1, signal.SIGTERM)


_PREEXEC = _die_with_parent if _LIBC is not None else None


class DemoRedis(EmbeddedRedis):
    """The embedded Redis, with a redis-server child in its own session (so Ctrl-C on
    the terminal does not stop it before the processes that use it), or fakeredis's
    TCP server in a thread (:mod:`abm.demo.fake_server`)."""

    def start(self) -> DemoRedis:
        binary = shutil.which("redis-server")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not binary:
            from abm.demo.fake_server import DemoFakeServer  # noqa: PLC0415 - fakeredis: the demo extra, only without redis-server

            self.server = DemoFakeServer(("127.0.0.1", self.port))
            threading.Thread(target=self.server.serve_forever, name="demo-redis", daemon=True).start()
            self.kind = "fakeredis"
            return self._ready()
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_PREEXEC)
        self.kind = "redis-server"
        return self._ready()

    def stop(self) -> None:
        server = self.server
        super().stop()
        if server is not None:
            server.server_close()

    def _ready(self) -> DemoRedis:
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if (self.process and self.process.poll() is not None) or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the embedded Redis ({self.kind}) did not start on port {self.port}") \
                        from None
                time.sleep(0.05)


def _children_of() -> dict[int, list[int]]:
    """{parent pid: [child pids]} for every process we can see in /proc."""
    tree: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        tree[ppid].append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, out, todo = _children_of(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class Child:
    """One child process; its output (stdout and stderr) goes to ``echo`` with a prefix,
    and the last lines are kept to say why it died."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], echo: Callable[[str], None]):
        self.name, self.argv, self.env, self.echo = name, argv, env, echo
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> Child:
        self.process = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=_PREEXEC)
        self._reader = threading.Thread(target=self._read, name=f"demo-{self.name}", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.tail.append(line)
                self.echo(f"[{self.name}] {line}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal_group(self, sig: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def why(self) -> str:
        code = self.exited()
        how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exit status {code}")
        if self._reader is not None:
            self._reader.join(2)
        lines = "\n".join(f"    {line}" for line in self.tail) or "    (it printed nothing)"
        return f"the {self.name} stopped ({how}); its last lines:\n{lines}"


def stop_all(children: list[Child], grace: float = 10.0) -> list[int]:
    """Stop every child and everything it started; returns the pids that had to be killed."""
    started = [c for c in children if c.process is not None]
    family = {pid for c in started for pid in [c.pid, *descendants(c.pid)]}
    for c in started:
        c.signal_group(signal.SIGTERM)
    _wait(started, grace)
    for c in started:  # RQ: a second SIGTERM is the cold shutdown (it kills the work horse)
        c.signal_group(signal.SIGTERM)
    _wait(started, 3)
    for c in started:
        c.signal_group(signal.SIGKILL)
    _wait(started, 3)
    killed = []
    for pid in sorted(family):
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    for c in started:
        if c._reader is not None:
            c._reader.join(2)
    return killed


def _wait(children: list[Child], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(c.exited() is None for c in children):
        time.sleep(0.1)
