"""The production web server: gunicorn driven from Python, with the app factory."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from abm import create_app


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return create_app()


#: The longest request line gunicorn reads (its maximum; the default is 4,094): every
#: query an operation documents fits. Longer is a 414, documented on every operation.
MAX_REQUEST_LINE = 8190


def run_gunicorn(host: str, port: int, workers: int, threads: int = 4, **extra) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "timeout": 60,
        "keepalive": 5,
        "preload_app": False,
        "limit_request_line": MAX_REQUEST_LINE,
    }
    options.update(extra)
    _Gunicorn(options).run()
