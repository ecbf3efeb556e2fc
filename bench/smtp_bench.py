"""Email for real: touches through a real local SMTP server (aiosmtpd), beside a plain
``smtplib`` loop sending the same messages prebuilt, in the same run.

    python bench/smtp_bench.py [--touches 3000] [--workers 2]

The engine's run is end to end, as ``dispatch_bench.py``'s: due enrollments dispatched by
the chains in two ``abm worker dispatch touches`` processes, the emails rendered, built
(MIME, headers, tracking) and sent through the ``smtp`` connector (one message a call,
recorded as the server accepts it, one connection per job, its default pace), marked sent.
The reference is one ``smtplib`` connection sending the same messages, built beforehand
(building is not timed; ``send_message`` still flattens each one). Printed: both rates and
their ratio (target >= 0.5), and the CPU time per email of the workers, of PostgreSQL and
of the SMTP server (this process), which other load on the machine moves less than the
rates do.

Environment: as dispatch_bench.py (ABM_BENCH_PG_URL, ABM_BENCH_REDIS_URL).
"""

from __future__ import annotations

import argparse
import os
import smtplib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis as redis_lib  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from sqlalchemy import select  # noqa: E402

from abm.db import db  # noqa: E402
from abm.models import Touch  # noqa: E402
from abm.redis_conn import _free_port  # noqa: E402
from abm.services import connectors  # noqa: E402
from abm.services import playbooks as service  # noqa: E402
from bench.dispatch_bench import (  # noqa: E402
    PG_URL,
    PLAYBOOK,
    REDIS_URL,
    Workers,
    fresh_database,
    make_app,
    postgres_cpu,
    seed,
    wait_sent,
)
from connectors.email_message import build_for_touch  # noqa: E402
from workers import dispatcher, jobs  # noqa: E402


class Sink:
    """Accepts every message (and counts them)."""

    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.count += 1
        return "250 OK"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--touches", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    fresh_database()
    database = PG_URL.rsplit("/", 1)[1]
    instance = tempfile.mkdtemp(prefix="abm-smtp-bench-")
    os.environ["ABM_INSTANCE_PATH"] = instance
    app = make_app()
    sink, port = Sink(), _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with app.app_context():
            redis_lib.Redis.from_url(REDIS_URL).flushdb()
            connectors.create({"type": "smtp", "name": "bench-smtp", "settings": {
                "host": "127.0.0.1", "port": port, "security": "none", "from_email": "bench@vendor.example"},
                "default": ["email"]})
            seed(args.touches)
            service.apply(PLAYBOOK.format().replace("bench-log", "bench-smtp"), "bench.yaml")
            service.activate("bench-dispatch")
            playbook_id = service.get("bench-dispatch").id
            workers = Workers(args.workers, instance, queues=("dispatch", "touches"))
            try:
                workers.wait_ready()
                cpu = (workers.cpu_seconds(), postgres_cpu(database), time.process_time())
                started = time.perf_counter()
                dispatcher.run_dispatch()
                finished = wait_sent(args.touches, timeout=900, playbook_id=playbook_id)
                time.sleep(0.5)  # the workers' last marks
                cpu = [(after - before) / args.touches * 1000 for before, after in zip(cpu, (
                    workers.cpu_seconds(), postgres_cpu(database), time.process_time()), strict=True)]
            finally:
                workers.stop()
            engine_rate = args.touches / (finished - started)

            rows = db.session.execute(select(*(Touch.__table__.c[c] for c in jobs._TOUCH_COLUMNS))
                                      .where(Touch.playbook_id == playbook_id).order_by(Touch.id)).all()
            connector = connectors.instantiate("bench-smtp")
            settings = connector._message_settings()
            messages = [build_for_touch(t, **settings) for t in jobs.build_batch(rows)]
            db.session.commit()
            before = sink.count
            smtp = smtplib.SMTP("127.0.0.1", port)
            loop_started = time.perf_counter()
            for message in messages:
                smtp.send_message(message, from_addr=settings["from_email"],
                                  to_addrs=[message["To"].addresses[0].addr_spec])
            loop_rate = len(messages) / (time.perf_counter() - loop_started)
            smtp.quit()
            assert sink.count - before == len(messages)
    finally:
        controller.stop()
    print(f"emails: {args.touches} through aiosmtpd, workers: {args.workers}, cores: {os.cpu_count()}")
    print(f"engine, end to end: {engine_rate:8,.0f} emails/s")
    print(f"CPU per email: workers {cpu[0]:.2f} ms (dispatch, render, build, send, record), PostgreSQL "
          f"{cpu[1]:.2f} ms, aiosmtpd (this process) {cpu[2]:.2f} ms -> {2 / sum(cpu) * 1000:,.0f} emails/s "
          "on 2 idle cores")
    print(f"smtplib loop, same messages prebuilt: {loop_rate:8,.0f} emails/s  -> ratio {engine_rate / loop_rate:.2f}")
    print(f"messages at the server: {sink.count} (expected {2 * args.touches})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
