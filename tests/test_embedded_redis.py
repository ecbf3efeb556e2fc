"""The embedded Redis for one machine: a real redis-server, or fakeredis over TCP without one."""

from __future__ import annotations

import shutil

import pytest
import redis
from rq import Queue, SimpleWorker

from abm.redis_conn import EmbeddedRedis


@pytest.mark.parametrize("kind", ["redis-server", "fakeredis"])
def test_rq_jobs_run_through_the_embedded_redis(kind, tmp_path, monkeypatch):
    if kind == "redis-server" and not shutil.which("redis-server"):
        pytest.skip("no redis-server on PATH")
    if kind == "fakeredis":
        monkeypatch.setattr(shutil, "which", lambda name: None)
    server = EmbeddedRedis(tmp_path).start()
    try:
        assert server.kind == kind
        conn = redis.Redis.from_url(server.url)
        queue = Queue("default", connection=conn)
        job = queue.enqueue("builtins.sum", [1, 2, 3])
        SimpleWorker([queue], connection=conn).work(burst=True, logging_level="WARNING")
        job.refresh()
        assert job.get_status() == "finished" and job.return_value() == 6
    finally:
        server.stop()
