"""The Redis connection: ``ABM_REDIS_URL`` in production, an embedded one otherwise.

The embedded Redis is a real ``redis-server`` from PATH when there is one, else
fakeredis's TCP server in a thread of this process, which other processes reach over
TCP like a real one. Either way the web server and the workers speak to it through the
same redis-py client and RQ code path as in production.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import redis
from flask import current_app

_embedded: EmbeddedRedis | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """A Redis for one machine: a real redis-server child process or fakeredis over TCP."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.workdir = Path(workdir)
        self.port = port or _free_port()
        self.process: subprocess.Popen | None = None
        self.server = None
        self.kind = ""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        if binary:
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            self.kind = "redis-server"
        else:
            try:  # fakeredis comes with the demo extra only: imported when no redis-server is there
                from abm.demo.fake_server import DemoFakeServer  # noqa: PLC0415 - fakeredis, optional (demo extra)
            except ImportError:
                raise RuntimeError("no redis-server on PATH and fakeredis is not installed: install the demo "
                                   "extra (pip install '.[demo]'; python3 run.py demo does), install "
                                   "redis-server, or set ABM_REDIS_URL") from None
            self.server = DemoFakeServer(("127.0.0.1", self.port))
            threading.Thread(target=self.server.serve_forever, daemon=True).start()
            self.kind = "fakeredis"
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the embedded Redis ({self.kind}) did not start on port {self.port}") from None
                time.sleep(0.05)
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.server is not None:
            self.server.shutdown()
            self.server = None


def start_embedded(workdir: Path) -> EmbeddedRedis:
    global _embedded
    if _embedded is None:
        _embedded = EmbeddedRedis(workdir).start()
    return _embedded


def init_app(app) -> None:
    """Bind a client to ``REDIS_URL``; without one the embedded Redis starts on first use."""
    url = app.config.get("REDIS_URL")
    app.extensions["abm.redis"] = redis.Redis.from_url(url) if url else None


def get_redis(app=None) -> redis.Redis:
    app = app or current_app._get_current_object()
    client = app.extensions.get("abm.redis")
    if client is None:
        url = start_embedded(Path(app.instance_path) / "redis").url
        app.config["REDIS_URL"] = url
        client = app.extensions["abm.redis"] = redis.Redis.from_url(url)
    return client


def persistence_problem(connection) -> str | None:
    """Why this Redis would lose queued work on a restart, or None when it keeps an
    append-only file. Engagement events wait in a Redis list for the drain, and jobs in
    RQ's queues: without ``appendonly yes`` a restart loses every one not yet taken (touches
    come back through recovery; engagement events do not)."""
    try:
        info = connection.info("persistence")
    except redis.RedisError as exc:
        return f"Redis did not answer INFO persistence ({type(exc).__name__})"
    if str(info.get("aof_enabled", "0")) in ("1", "yes"):
        return None
    return ("Redis runs without an append-only file (appendonly no): queued engagement events and jobs are lost "
            "if it restarts; run it with `appendonly yes` (docs/operations.md)")
