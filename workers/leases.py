"""The heartbeat of a touch job: its claims renewed while it runs.

A claim (``touches.claimed_at``) is a lease of ``ABM_TOUCH_LEASE_SECONDS`` (30 s by
default). While a job runs, a thread renews the claims of its touches every third of
the lease on a database connection of its own, so a job may take as long as its
provider needs and the lease can still be short: when a worker dies (SIGKILL, a lost
host), the heartbeat stops with it, and the periodic recovery finds its touches within
a lease plus the recovery's period -- under a minute.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from flask import current_app

from abm.db import db
from abm.services import clock, delivery

log = logging.getLogger(__name__)


@contextlib.contextmanager
def heartbeat(touch_ids: list[int]):
    """Renew the claims of ``touch_ids`` until the block ends."""
    app = current_app._get_current_object()
    period = delivery.lease().total_seconds() / 3
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(period):
            with app.app_context():
                try:
                    with db.engine.begin() as connection:
                        delivery.renew(connection, touch_ids, clock.now())
                except Exception:  # noqa: BLE001 - a missed beat is retried at the next one
                    log.warning("could not renew the claims of %d touches", len(touch_ids), exc_info=True)

    thread = threading.Thread(target=beat, name="abm-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(period + 5)
