"""The heartbeat of a touch job: its claims renewed while it runs, and its fence.

A claim (``touches.claimed_at``) is a lease of ``ABM_TOUCH_LEASE_SECONDS`` (30 s by
default). While a job runs, a thread renews the claims of its touches every third of the
lease on a database connection of its own, so a job may take as long as its provider
needs and the lease can still be short: when a worker dies (SIGKILL, a lost host), the
heartbeat stops with it, and the periodic recovery finds its touches within a lease plus
the recovery's period -- under a minute.

A live job can lose its lease too: a stalled process, a database unreachable for a few
beats. Recovery then hands its touches to another job, and if the first one went on it
would send them a second time -- the rest of its whole batch. So before each provider
call the job asks :meth:`Lease.held` which of the call's touches it still holds. The
answer is free while the last confirmed beat is recent (the claim cannot have run out);
otherwise it is one fenced ``renew`` (``abm.services.delivery.renew``: a touch is held
only while it is claimed with the attempt number this job's claim counted).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from flask import current_app

from abm.db import db
from abm.services import clock, delivery

log = logging.getLogger(__name__)

#: A missed beat is tried again this soon (seconds), not a whole period later.
RETRY_BEAT = 0.2


class Lease:
    """The claims of one job: which touches it still holds, and since when that is known."""

    def __init__(self, attempts: dict[int, int]):
        self.app = current_app._get_current_object()
        self.attempts = dict(attempts)
        self._held = set(attempts)
        self.seconds = delivery.lease().total_seconds()
        self.confirmed = time.monotonic()  # the claim itself was just committed
        self._lock = threading.Lock()

    def renew(self) -> None:
        """One fenced renewal, on a connection of its own; raises when the database does."""
        with self._lock:
            pending = {t: self.attempts[t] for t in self._held}
        started = time.monotonic()
        with self.app.app_context(), db.engine.begin() as connection:
            held = delivery.renew(connection, pending, clock.now())
        with self._lock:
            self._held -= set(pending) - held
            self.confirmed = max(self.confirmed, started)

    def held(self, touch_ids: list[int]) -> list[int]:
        """Of ``touch_ids``, those this job still holds, checked against the database when
        the last confirmation is half a lease old."""
        if time.monotonic() - self.confirmed >= self.seconds / 2:
            self.renew()
        with self._lock:
            return [t for t in touch_ids if t in self._held]


@contextlib.contextmanager
def heartbeat(attempts: dict[int, int]):
    """Renew the claims of the touches in ``attempts`` (id -> the attempt their claim
    counted) until the block ends; yields the job's :class:`Lease`."""
    lease = Lease(attempts)
    period = lease.seconds / 3
    stop = threading.Event()

    def beat() -> None:
        wait = period
        while not stop.wait(wait):
            try:
                lease.renew()
                wait = period
            except Exception:  # noqa: BLE001 - a missed beat is tried again shortly
                log.warning("could not renew the claims of %d touches", len(lease.attempts), exc_info=True)
                wait = RETRY_BEAT

    thread = threading.Thread(target=beat, name="abm-heartbeat", daemon=True)
    thread.start()
    try:
        yield lease
    finally:
        stop.set()
        thread.join(period + 5)
