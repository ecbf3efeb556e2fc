"""``abm demo`` end to end, as a user runs it: a real subprocess on a fresh instance folder
with no ABM_REDIS_URL (so its own embedded Redis), the real login form, emails in the
outbox, sent touches in the API, and nothing left running after SIGTERM.

It runs once per embedded Redis kind (redis-server, fakeredis), not once per database
backend (no ``app`` fixture): the demo is the SQLite-and-embedded-Redis product.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> set[int]:
    """``pid`` and every live descendant, from /proc (psutil when installed)."""
    try:
        import psutil  # noqa: PLC0415 - optional (not a dependency): /proc otherwise

        try:
            proc = psutil.Process(pid)
            return {pid, *(c.pid for c in proc.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()
    except ImportError:
        pass
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p == pid and not Path(f"/proc/{pid}").exists():
            continue
        out.add(p)
        todo.extend(parents.get(p, []))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(params=["redis-server", "fakeredis"])
def demo(request, tmp_path):
    """The demo on a real redis-server child when one is on PATH, and on fakeredis as on a
    machine with nothing but Python (PATH then names an empty folder: the children are
    started by absolute path and need nothing from it)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABM_")}
    if request.param == "redis-server" and not shutil.which("redis-server"):
        pytest.skip("no redis-server on PATH")
    if request.param == "fakeredis":
        (tmp_path / "bin").mkdir()
        env["PATH"] = str(tmp_path / "bin")
    env.update(ABM_INSTANCE_PATH=str(tmp_path / "instance"), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    log = (tmp_path / "demo.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", "from abm.cli import main; main(prog_name='abm')", "demo",
                             "--port", str(port), "--accounts", "150", "--no-browser"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    run = {"proc": proc, "port": port, "redis": request.param, "base": f"http://127.0.0.1:{port}", "instance": tmp_path / "instance",
           "log": tmp_path / "demo.log", "family": set()}
    try:
        yield run
    finally:
        if proc.poll() is None:
            run["family"] |= _tree(proc.pid)
            os.killpg(proc.pid, signal.SIGKILL)
            for pid in run["family"]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        log.close()


def _output(run) -> str:
    return run["log"].read_text(errors="replace")


def _wait_for(what: str, check, run, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run["proc"].poll() is not None:
            pytest.fail(f"abm demo exited ({run['proc'].returncode}) while waiting for {what}:\n{_output(run)}")
        result = check()
        if result:
            return result
        time.sleep(every)
    pytest.fail(f"no {what} within {timeout:.0f} s; the demo said:\n{_output(run)}")


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_demo_runs_playbooks_and_stops_cleanly(demo):
    base, outbox = demo["base"], demo["instance"] / "outbox"
    _wait_for("answer on /healthz", lambda: _healthy(base), demo, timeout=90)
    # The banner comes once the web server answers: the logins are in it.
    _wait_for("printed demo logins", lambda: "demo-manager" in _output(demo), demo, timeout=10, every=0.2)
    out = _output(demo)
    assert f"http://127.0.0.1:{demo['port']}" in out
    assert "manager@ourco.example" in out and "demo credentials" in out
    assert f"embedded {demo['redis']}" in out

    s = requests.Session()
    form = s.get(f"{base}/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    bad = s.post(f"{base}/login", data={"csrf_token": token, "email": "manager@ourco.example",
                                         "password": "wrong-password"}, timeout=30)
    assert bad.status_code == 401
    page = s.post(f"{base}/login", data={"csrf_token": token, "email": "manager@ourco.example",
                                          "password": "demo-manager"}, timeout=30)
    assert page.status_code == 200 and "/login" not in page.url

    emails = _wait_for(".eml files in the outbox",
                       lambda: sorted(outbox.glob("*.eml")) if outbox.is_dir() else [], demo, timeout=60)
    assert b"Subject:" in emails[0].read_bytes()

    def sent():
        # The history has sent touches of a past campaign; the live ones are the demo playbook's.
        resp = s.get(f"{base}/api/v1/touches", params={"status": "sent", "playbook": "demo-first-touch",
                                                        "channel": "email", "limit": 100}, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()["items"]

    items = _wait_for("sent touches of the demo playbook in the API", sent, demo, timeout=30)
    assert {(t["status"], t["playbook"]) for t in items} == {("sent", "demo-first-touch")}
    assert all(t["channel"] == "email" and t["sent_at"] for t in items)
    past = s.get(f"{base}/api/v1/touches", params={"status": "sent", "playbook": "webinar-follow-up"},
                 timeout=10).json()["items"]
    assert past and all(t["sent_at"] < items[-1]["sent_at"] for t in past)
    outbox_page = s.get(f"{base}/outbox", timeout=10)
    assert outbox_page.status_code == 200

    demo["family"] = _tree(demo["proc"].pid)
    assert len(demo["family"]) >= 5  # the demo, a web server (with its workers), 2 workers, the scheduler
    os.kill(demo["proc"].pid, signal.SIGTERM)
    try:
        code = demo["proc"].wait(timeout=40)
    except subprocess.TimeoutExpired:
        pytest.fail(f"abm demo did not stop within 40 s of SIGTERM:\n{_output(demo)}")
    assert code == 0, _output(demo)
    time.sleep(0.5)
    left = sorted(pid for pid in demo["family"] if _alive(pid))
    assert not left, f"processes left after the demo stopped: {left}"
    assert not _healthy(base)
    assert "demo stopped" in _output(demo)
