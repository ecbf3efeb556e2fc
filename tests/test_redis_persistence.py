"""`abm doctor` warns when Redis keeps no append-only file (queued events and jobs would be
lost on a restart), against real redis-server processes with and without one."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time

import pytest
import redis as redis_lib

from abm.commands.doctor import doctor
from abm.redis_conn import _free_port, persistence_problem
from tests.conftest import make_app, unavailable
from workers import scheduler


@pytest.fixture
def redis_server(tmp_path):
    started = []

    def start(appendonly: str) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server on PATH")
        port = _free_port()
        started.append(subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", appendonly, "--dir", str(tmp_path)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client = redis_lib.Redis(port=port)
        for _ in range(200):
            try:
                client.ping()
                return f"redis://127.0.0.1:{port}/0"
            except redis_lib.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_doctor_warns_about_a_redis_without_an_append_only_file(backend, instance_dir, redis_server):
    volatile, durable = redis_server("no"), redis_server("yes")
    assert "appendonly no" in persistence_problem(redis_lib.Redis.from_url(volatile))
    assert persistence_problem(redis_lib.Redis.from_url(durable)) is None
    for url, expected in ((volatile, "WARN  redis: Redis runs without an append-only file"),
                          (durable, "OK    redis: keeps an append-only file")):
        app = make_app(backend, instance_dir, url)
        result = app.test_cli_runner().invoke(doctor)
        assert expected in result.output, result.output


class _Cron:
    """Stands in for RQ's CronScheduler, whose ``start`` would loop for ever."""

    def __init__(self, started: list):
        self.started = started

    def start(self):
        self.started.append(True)


def test_the_scheduler_warns_at_start_in_production_when_redis_keeps_no_append_only_file(
        backend, instance_dir, redis_server, monkeypatch, caplog):
    started: list = []
    monkeypatch.setattr(scheduler, "build", lambda connection, include_engagement=True: _Cron(started))
    volatile, durable = redis_server("no"), redis_server("yes")
    said = {}
    for name, url, env in (("volatile", volatile, "production"), ("durable", durable, "production"),
                           ("development", volatile, "development")):
        app = make_app(backend, instance_dir, url)
        app.config["ENV_NAME"] = env
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="abm.scheduler"):
            scheduler.run(app)
        said[name] = [r.getMessage() for r in caplog.records if r.name == "abm.scheduler"]
    assert len(started) == 3  # it warns, and starts all the same
    [warning] = said["volatile"]
    assert "without an append-only file (appendonly no)" in warning and "appendonly yes" in warning
    assert said["durable"] == [] and said["development"] == []
