"""The ABM orchestration application.

``create_app(config=None, **overrides)`` is the Flask factory: nothing happens at
import time. ``flask --app abm`` finds it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

import config as config_module
from abm import api, auth, health, logs, redis_conn, web
from abm.db import db as database  # not `db`: abm.db stays the module (the migrations use abm.db.UTCDateTime)
from abm.errors import register_error_handlers
from abm.paths import ROOT


def create_app(config=None, **overrides) -> Flask:
    # urllib3 logs request paths at DEBUG, and some webhook URLs carry their secret.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, logging.getLogger("urllib3").level))
    cfg = config if config is not None else config_module.load()
    cfg.validate()
    logs.configure(getattr(cfg, "ABM_LOG_FORMAT", "text"))
    app = Flask(
        "abm",
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "abm" / "static"),
        instance_path=cfg.INSTANCE_PATH,
    )
    app.config.update(cfg.as_dict())
    app.config.update(overrides)
    app.config["ABM_CONFIG"] = cfg
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    database.init_app(app)
    redis_conn.init_app(app)
    auth.init_app(app)
    register_error_handlers(app)
    health.init_app(app)

    api.init_app(app)
    web.init_app(app)

    from abm.cli import register_commands  # noqa: PLC0415 - cycle: abm.cli loads the commands, which import create_app

    register_commands(app)
    if app.config.get("TRUSTED_PROXIES"):
        # Outermost, so that the middlewares in front of Flask (the pixel, the beacon) see it too:
        # the client's address (login throttling, visit identification) from the proxies' header.
        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    return app
