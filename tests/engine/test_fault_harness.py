"""The fault harness: 2,100 touches through the outbox (the touches table) to three real
receivers (an aiosmtpd SMTP server, a webhook receiver speaking the webhook connector's
protocol and a SendGrid stand-in), sent by two real ``abm worker`` processes while the test
SIGKILLs a worker at seeded random moments (ten times, a new worker started each time),
restarts the Redis server empty (a redis-server process of the test's own, killed and
started again on the same port) and drops every PostgreSQL connection of the workers
(``pg_terminate_backend``), all mid-run.

Counted at the receivers: no touch lost, and no more repeats than the per-call bound
allows (docs/engine.md): a fault interrupts at most the calls in flight, one per worker
killed and one per worker whose connection was dropped; a repeated call is one message for
SMTP, one POST for the webhook, up to 50 emails for SendGrid (one request each when
their bodies differ).
Recovery runs every second here (the scheduler's runs every 15 s) with an 8 s lease, so
that the run fits the suite. The stand-ins' client timeouts are a minute: a call the
provider accepted but whose answer the client gave up on is a repeat too (the call was in
flight), and on a loaded CI machine the stand-ins, which share the test's process, can be
slow to answer; the harness counts the repeats of the faults it injects.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from collections import Counter

import pytest
import redis as redis_lib
from sqlalchemy import select, text

from abm.db import db, utcnow
from abm.models import Account, Contact
from abm.redis_conn import _free_port
from abm.services import connectors
from abm.services import playbooks as service
from tests.connectors.fakes.sendgrid import sendgrid_app
from tests.connectors.fakes.smtp_server import smtp_server
from tests.connectors.harness import serve
from tests.engine.processes import Abm, wait_for
from tests.engine.test_delivery_processes import SECRET, Receiver, _statuses
from workers import dispatcher

ACCOUNTS = 700  # three touches each: 2,100
KILLS = 10
#: Workers whose call in flight a dropped connection can interrupt (both).
WORKERS = 2
LEASE = 8  # seconds: a worker starved of CPU for a few seconds keeps its claims
SENDGRID_CALL = 50  # personalizations per mail/send (SendGridConnector.max_batch)

PLAYBOOK = """version: 1
key: harness
name: Harness
audience:
  where: {tier: [1]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: mail
    email: {connector: mail, to: {roles: [decision_maker]}, subject: "Hello {{ account.name }}", body: "<p>Hi</p>"}
  - id: grid
    email: {connector: grid, to: {roles: [decision_maker]}, subject: "Again", body: "<p>Hello again</p>"}
  - id: notify
    webhook: {connector: hook, payload: {domain: "{{ account.domain }}"}}
"""


@pytest.fixture(autouse=True)
def _postgresql_only(backend):
    if backend != "postgresql":
        pytest.skip("the harness drops PostgreSQL connections (pg_terminate_backend)")


class OwnRedis:
    """A redis-server process of the test's own, without persistence: ``restart()`` kills
    it and starts a new one on the same port, empty, as a crashed Redis comes back."""

    def __init__(self, workdir):
        self.workdir, self.port = workdir, _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis_lib.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), 10, "redis-server to answer")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except redis_lib.ConnectionError:
        return False


@pytest.fixture
def own_redis(app, tmp_path):
    if not shutil.which("redis-server"):
        pytest.fail("the fault harness needs redis-server on PATH (apt-get install redis-server)")
    server = OwnRedis(tmp_path)
    server.start()
    saved = app.config["REDIS_URL"], app.extensions.get("abm.redis")
    app.config["REDIS_URL"] = server.url
    app.extensions["abm.redis"] = redis_lib.Redis.from_url(server.url)
    yield server
    app.config["REDIS_URL"], app.extensions["abm.redis"] = saved
    server.stop()


def _drop_worker_connections() -> None:
    db.session.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    db.session.commit()


def _setup(smtp, grid, hook) -> None:
    db.session.add_all(Account(name=f"H{i}", domain=f"h{i}.example", tier=1) for i in range(ACCOUNTS))
    db.session.flush()
    ids = db.session.execute(select(Account.id)).scalars().all()
    db.session.add_all(Contact(account_id=a, email=f"dm@{a}.example", buying_role="decision_maker") for a in ids)
    db.session.commit()
    sender = {"from_email": "news@vendor.example", "from_name": "Vendor", "tracking": False}
    connectors.create({"type": "smtp", "name": "mail", "rate_limit": "1000/1", "settings": {
        "host": smtp.host, "port": smtp.port, "security": "none", "timeout": 60, **sender}})
    connectors.create({"type": "sendgrid", "name": "grid", "rate_limit": "1000/1", "settings": {
        "api_key": "SG.good", "base_url": grid.base_url, "timeout": 60, **sender}})
    connectors.create({"type": "webhook", "name": "hook", "rate_limit": "1000/1",
                       "settings": {"url": hook.base_url + "/hooks/abm", "secret": SECRET, "timeout": 60}})
    service.apply(PLAYBOOK)
    service.activate("harness")


def _sendgrid_counts(accepted: list[dict]) -> Counter:
    """Deliveries per touch key. One engine call to SendGrid is up to 50 touches, sent as
    one ``mail/send`` request per distinct message (personalized bodies: one per touch),
    so an interrupted call repeats up to 50 requests; the bound counts touches."""
    return Counter(p["custom_args"]["abm_touch_key"] for body in accepted for p in body["personalizations"])


def _run_faults(app, own_redis, rng, sent_so_far, total, env) -> Counter:
    """Ten kills (a new worker each time), Redis restarted after the fourth and connections
    dropped after the seventh; counts the faults that came while sending was unfinished."""
    workers = [Abm(app, "worker", **env) for _ in range(WORKERS)]
    mid_run: Counter = Counter()
    try:
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.2))
            victim = workers.pop(rng.randrange(len(workers)))
            victim.kill()
            mid_run["kill"] += sent_so_far() < total
            workers.append(Abm(app, "worker", **env))
            if kill == 3:
                mid_run["redis restarted"] += sent_so_far() < total
                own_redis.restart()
            if kill == 6:
                mid_run["connections dropped"] += sent_so_far() < total
                _drop_worker_connections()
            dispatcher.recover(now=utcnow())

        def settled() -> bool:
            for n, worker in enumerate(workers):  # a worker that gave up on Redis is started again
                if not worker.alive():
                    workers[n] = Abm(app, "worker", **env)
            dispatcher.recover(now=utcnow())
            return _statuses() == {"sent": total}

        wait_for(settled, 180, "every touch sent", every=1.0)
    finally:
        for worker in workers:
            worker.kill()
    return mid_run


def test_kills_a_restarted_redis_and_dropped_connections_lose_nothing(app, own_redis):
    rng = random.Random(12)
    env = {"ABM_TOUCH_LEASE_SECONDS": str(LEASE)}
    app.config["ABM_TOUCH_LEASE_SECONDS"] = LEASE
    total = 3 * ACCOUNTS
    hook = Receiver()
    grid_app = sendgrid_app()
    with smtp_server() as smtp, serve(grid_app) as grid, serve(hook.app) as hook_server:
        _setup(smtp, grid, hook_server)
        dispatcher.dispatch(now=utcnow(), batch_size=50)  # 14 batches, jobs of up to 50 per connector

        def sent_so_far() -> int:
            return len(smtp.messages) + len(hook.app.config["RECEIVED"]) + sum(
                len(b["personalizations"]) for b in grid_app.config["ACCEPTED"])

        mid_run = _run_faults(app, own_redis, rng, sent_so_far, total, env)
        mails = Counter(m.message["X-ABM-Touch"] for m in smtp.messages)
        grids = _sendgrid_counts(grid_app.config["ACCEPTED"])
        hooks = hook.delivered()
    # The faults came while there was sending to interrupt.
    assert mid_run["kill"] >= KILLS // 2 and mid_run["redis restarted"] and mid_run["connections dropped"], mid_run
    assert (len(mails), len(grids), len(hooks)) == (ACCOUNTS, ACCOUNTS, ACCOUNTS)  # none lost
    # A fault repeats at most the calls in flight: one per kill, one per worker whose
    # connection was dropped (the Redis restart interrupts no provider call).
    interrupted = KILLS + WORKERS
    mail_repeats = sum(n - 1 for n in mails.values())
    hook_repeats = sum(n - 1 for n in hooks.values())
    grid_repeats = sum(n - 1 for n in grids.values())
    grid_calls = -(-grid_repeats // SENDGRID_CALL)  # the fewest calls of 50 that repeat them
    assert mail_repeats + hook_repeats + grid_calls <= interrupted, (mail_repeats, hook_repeats, grid_repeats)
