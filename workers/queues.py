"""The product's queues, named by workload."""

from __future__ import annotations

from rq import Queue

#: dispatch: the periodic dispatcher and sweeps; touches: sending through connectors;
#: events: the engagement drain; default: everything else (rollups, imports, alerts).
QUEUE_NAMES = ("dispatch", "touches", "events", "default")


def get_queue(name: str, connection) -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r} (known: {', '.join(QUEUE_NAMES)})")
    return Queue(name, connection=connection)
