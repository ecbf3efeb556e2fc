"""The product's queues, named by workload."""

from __future__ import annotations

from rq import Queue

#: dispatch: the periodic dispatcher and sweeps; touches: sending through connectors;
#: events: the engagement drain; imports: CSV imports (long jobs, kept out of the others'
#: way; `abm worker --fork imports` runs them in a process of their own); default:
#: everything else (rollups, alerts).
QUEUE_NAMES = ("dispatch", "touches", "events", "imports", "default")


def get_queue(name: str, connection) -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r} (known: {', '.join(QUEUE_NAMES)})")
    return Queue(name, connection=connection)
