"""The periodic jobs: RQ's cron enqueues the dispatcher, recovery and the sweep, and
ordinary workers run them."""

from __future__ import annotations

from rq import Queue, SimpleWorker
from sqlalchemy import select

from abm.db import db
from abm.models import Touch
from abm.redis_conn import get_redis
from abm.services import playbooks as service
from tests.engine.conftest import make_account, sent_lines
from workers import scheduler

PLAYBOOK = """version: 1
key: cron-pb
name: Cron
audience:
  where: {tier: [1]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    alert: {to: "sales@example.com", message: "{{ account.name }}"}
"""


def test_cron_runs_dispatcher_then_touch_jobs(app, sent_log, worker):
    make_account("Cron Co")
    service.apply(PLAYBOOK)
    service.activate("cron-pb")
    conn = get_redis()
    cron = scheduler.build(conn, include_engagement=False)
    names = sorted(job.func_name for job in cron.get_jobs())
    assert names == ["workers.dispatcher.recover", "workers.dispatcher.run_dispatch",
                     "workers.dispatcher.run_sweep"]
    assert len(cron.enqueue_jobs()) == 3
    SimpleWorker([Queue("dispatch", connection=conn)], connection=conn).work(burst=True, logging_level="WARNING")
    worker()
    assert [line["payload"]["message"] for line in sent_lines(sent_log)] == ["Cron Co"]
    assert db.session.execute(select(Touch.status)).scalars().all() == ["sent"]
