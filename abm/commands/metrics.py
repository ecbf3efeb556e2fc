"""``abm metrics``: the operational metrics in Prometheus' format on a port of their own."""

from __future__ import annotations

import threading

import click
from flask import current_app
from flask.cli import with_appcontext
from prometheus_client import CollectorRegistry, start_http_server

from abm.db import db
from abm.redis_conn import get_redis
from abm.services import delivery, events
from abm.telemetry import Collector
from workers.queues import QUEUE_NAMES, get_queue


def gauges(app) -> dict:
    """What a scrape reads now: queue depths, the drain's backlog, postponed touches."""

    with app.app_context():
        redis = get_redis()
        try:
            postponed = delivery.postponed_by_connector()
        finally:
            db.session.remove()
        return {"queues": {name: get_queue(name, redis).count for name in QUEUE_NAMES},
                "backlog": redis.llen(events.QUEUE_KEY), "postponed": postponed}


def registry_for(app):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(get_redis(app), lambda: gauges(app)))
    return registry


@click.command("metrics", help="Serve the operational metrics (Prometheus' text format) at http://HOST:PORT/metrics. "
                               "Bind it where only your Prometheus can reach it.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9108, show_default=True, type=int)
@with_appcontext
def metrics(host, port):
    app = current_app._get_current_object()
    start_http_server(port, addr=host, registry=registry_for(app))
    click.echo(f"metrics at http://{host}:{port}/metrics")
    threading.Event().wait()


commands = [metrics]
