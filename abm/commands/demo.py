"""``abm demo``: from nothing to a running product on one machine.

Migrates the configured database (SQLite under ``instance/`` by default), fills it with
demo data when it has none (:mod:`abm.services.demo`), starts one embedded Redis when
``ABM_REDIS_URL`` is unset, then runs the web server, the RQ workers and the scheduler
as child processes that all get the same ``ABM_DATABASE_URL`` and ``ABM_REDIS_URL``.
It stays in the foreground; Ctrl-C or SIGTERM stops everything it started.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
import warnings
import webbrowser
from pathlib import Path

import click
from sqlalchemy.engine import make_url

import config
from abm import create_app
from abm.db import db
from abm.demo import supervisor
from abm.demo.readers import Readers
from abm.migrate import upgrade
from abm.services import demo as demo_service


class _Stop(BaseException):
    """Raised by the signal handler: Ctrl-C or SIGTERM, stop everything."""


def _on_signal(signum, _frame):
    raise _Stop(signal.Signals(signum).name)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _abm_argv() -> list[str]:
    """How to run ``abm`` in a child: the script beside this Python, else through -c."""
    script = Path(sys.executable).parent / "abm"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "from abm.cli import main; main(prog_name='abm')"]


def _wait_healthy(url: str, children, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.exited() is not None for c in children):
            return False
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False


def _can_open_browser() -> bool:
    """Only where a graphical browser can open: a console one would take the terminal."""
    if not sys.stdout.isatty():
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _say(msg: str) -> None:
    click.echo(msg)


def _prepare(accounts: int) -> tuple[str, str, object]:
    """Migrate and fill the database; (database URL, outbox folder, summary)."""

    app = create_app()
    url = app.config["DATABASE_URL"]
    _say(f"migrating the database ({_safe_url(url)}) ...")
    with warnings.catch_warnings():
        # Alembic's reflection of an expression index on SQLite: harmless, and noise here.
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection")
        upgrade(url)
    with app.app_context():
        summary = demo_service.prepare(accounts, say=_say)
        db.session.remove()
        db.engine.dispose()
    return url, app.config["OUTBOX_DIR"], summary


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return "the configured database"


def _banner(url: str, summary, outbox: str, redis_kind: str, workers: int, seconds: float) -> None:
    lines = ["", f"ABM demo is running at {url}  (ready in {seconds:.0f} s)", "",
             "Demo logins (demo credentials, fixed; do not reuse them anywhere real):"]
    for role, email, password, note in summary.users:
        lines.append(f"  {role:<8} {email:<30} {password}" + (f"   ({note})" if note else ""))
    lines.append("")
    if summary.seeded:
        s = summary.seeded
        lines.append(f"Demo data: {s.get('accounts', 0)} accounts, {s.get('contacts', 0)} contacts, "
                     f"{s.get('opportunities', 0)} opportunities, {summary.events} engagement events "
                     f"over 60 days, {summary.past_touches} emails of a past webinar follow-up, "
                     f"{summary.costs} spend entries.")
    else:
        lines.append("The database had data already: it was not seeded again.")
    lines.append("Playbooks:")
    for key, status, note in summary.playbooks:
        lines.append(f"  {key:<26} {status:<8} {note}")
    for problem in summary.problems:
        lines.append(f"  warning: {problem}")
    lines += ["",
              f"Running: web server, {workers} worker{'s' if workers != 1 else ''}, scheduler; Redis: {redis_kind}.",
              f"Emails are written to {outbox} (the Outbox page shows them: {url}/outbox).",
              "Press Ctrl-C to stop everything.", ""]
    click.echo("\n".join(lines))


@click.command("demo", help="Run the whole product on this machine: migrate, seed demo data when the database "
                            "is empty, start an embedded Redis (when ABM_REDIS_URL is unset), the web server, "
                            "workers and the scheduler; print the URL and the demo logins. Ctrl-C stops it all.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="Web server port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Web server address.")
@click.option("--accounts", default=300, show_default=True, type=click.IntRange(1, 100_000),
              help="Demo accounts to seed into an empty database.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 16), help="RQ worker processes.")
@click.option("--no-browser", is_flag=True, help="Do not open the web UI in a browser.")
@click.option("--readers/--no-readers", default=True, show_default=True,
              help="Simulated readers open and click some of the demo's emails (through the tracking links).")
def demo(port, host, accounts, workers, no_browser, readers):
    started = time.monotonic()
    if not _port_free(host, port):
        raise click.ClickException(f"port {port} on {host} is in use; stop what runs there or pick another "
                                   "with --port")
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    instance = config.instance_path()
    embedded = None
    children: list[supervisor.Child] = []
    sim = None
    code = 0
    try:
        redis_url = os.environ.get("ABM_REDIS_URL")
        if redis_url:
            redis_kind = "ABM_REDIS_URL"
        else:
            _say("starting an embedded Redis ...")
            embedded = supervisor.DemoRedis(instance / "redis").start()
            redis_url = os.environ["ABM_REDIS_URL"] = embedded.url
            redis_kind = f"embedded {embedded.kind} on port {embedded.port}"
        base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        os.environ.setdefault("ABM_BASE_URL", base_url)
        os.environ.setdefault("ABM_ALLOW_PRIVATE_URLS", "1")  # the demo's provider servers are local
        try:
            prepare_started = time.monotonic()
            db_url, outbox, summary = _prepare(accounts)
            _say(f"database ready in {time.monotonic() - prepare_started:.1f} s; starting the web server, "
                 f"{workers} worker{'s' if workers != 1 else ''} and the scheduler ...")
        except _Stop:
            raise
        except Exception as exc:  # noqa: BLE001 - said in a sentence, the demo stops
            raise click.ClickException(f"preparing the demo failed: {type(exc).__name__}: {exc}") from None
        env = {**os.environ, "ABM_DATABASE_URL": db_url, "ABM_REDIS_URL": redis_url,
               "ABM_INSTANCE_PATH": str(instance), "PYTHONUNBUFFERED": "1"}
        abm = _abm_argv()
        children.append(supervisor.Child("web server", [*abm, "serve", "--host", host, "--port", str(port),
                                                        "--workers", "2"], env, _say).start())
        for n in range(1, workers + 1):
            children.append(supervisor.Child(f"worker {n}", [*abm, "worker"], env, _say).start())
        children.append(supervisor.Child("scheduler", [*abm, "scheduler"], env, _say).start())
        if not _wait_healthy(base_url, children, timeout=90):
            dead = [c for c in children if c.exited() is not None]
            if dead:
                raise click.ClickException(dead[0].why())
            raise click.ClickException(f"the web server did not answer {base_url}/healthz within 90 s")
        _banner(base_url, summary, outbox, redis_kind, workers, time.monotonic() - started)
        if readers:
            sim = Readers(Path(outbox), os.environ["ABM_BASE_URL"])
            sim.start()
        if not no_browser and _can_open_browser():
            webbrowser.open(f"{base_url}/login")
        while True:
            dead = [c for c in children if c.exited() is not None]
            if dead:
                click.echo(dead[0].why(), err=True)
                click.echo("stopping the demo.", err=True)
                code = 1
                break
            time.sleep(0.5)
    except _Stop as stop:
        click.echo(f"\n{stop.args[0] if stop.args else 'stop'}: stopping the demo ...")
    except click.ClickException as exc:
        exc.show()
        code = 1
    finally:
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        if sim is not None:
            sim.stop()
        killed = supervisor.stop_all(children)
        if embedded is not None:
            embedded.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        if children or embedded is not None:
            extra = f" ({len(killed)} leftover process(es) killed)" if killed else ""
            click.echo(f"demo stopped: web server, workers, scheduler and Redis are down{extra}.")
    sys.exit(code)


commands = [demo]
