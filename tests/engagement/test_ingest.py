"""The ingestion path: the events API, de-duplication, late matching, Redis outages."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from datetime import timedelta

import pytest
import redis as redis_lib
from sqlalchemy import func, select

from abm import tracking
from abm.db import db, utcnow
from abm.models import Account, Contact, Event
from abm.redis_conn import _free_port
from abm.services import events, matching
from abm.services.events import insert as event_insert
from tests.conftest import empty_database, make_app, unavailable
from tests.engagement.conftest import add_site


def _iso(delta=timedelta(0)):
    return (utcnow() - delta).isoformat()


def test_events_batch_accepts_good_events_and_rejects_bad_ones_by_index(app, api, world):
    c = api("manager")
    batch = [
        {"type": "web_visit", "occurred_at": _iso(), "email": "jane@acme.com", "url": "https://v.example/pricing"},
        {"type": "teleport", "occurred_at": _iso(), "email": "jane@acme.com"},
        {"type": "meeting", "occurred_at": "yesterday", "account_domain": "acme.com"},
        {"type": "meeting", "occurred_at": _iso(), "account_domain": "https://www.Globex.com/about"},
        {"type": "email_open", "occurred_at": _iso()},
        {"type": "form_fill", "occurred_at": _iso(), "email": "x@acme.com", "colour": "red"},
    ]
    resp = c.post("/api/v1/events", json=batch)
    assert resp.status_code == 202
    assert resp.json["accepted"] == 2
    assert [r["index"] for r in resp.json["rejected"]] == [1, 2, 4, 5]
    assert "unknown event type 'teleport'" in resp.json["rejected"][0]["message"]
    assert "colour" in resp.json["rejected"][3]["message"]
    events.drain()
    rows = db.session.execute(select(Event.type, Event.account_id).order_by(Event.id)).all()
    assert rows == [("web_visit", world["acme"].id), ("meeting", world["globex"].id)]


def test_events_api_roles_and_limits(app, api, client):
    assert client.post("/api/v1/events", json=[]).status_code == 401
    assert api("ae").post("/api/v1/events", json=[]).status_code == 403
    too_many = [{"type": "email_open", "occurred_at": _iso(), "account_id": 1}] * 1001
    resp = api("admin").post("/api/v1/events", json=too_many)
    assert resp.status_code == 422 and resp.json["error"]["code"] == "validation_error"


def test_a_dedup_key_seen_before_is_accepted_and_not_counted_twice(app, api, world):
    c = api("admin")
    event = {"type": "meeting", "occurred_at": _iso(), "email": "jane@acme.com", "dedup_key": "cal-123"}
    assert c.post("/api/v1/events", json=[event, event]).json["accepted"] == 2
    events.drain()
    assert c.post("/api/v1/events", json=[event]).json["accepted"] == 1
    events.drain()
    assert db.session.execute(select(func.count(Event.id))).scalar_one() == 1
    db.session.expire_all()
    meeting_weight = 25
    assert db.session.get(Account, world["acme"].id).score == pytest.approx(meeting_weight, rel=1e-3)


def test_a_drain_that_runs_again_after_its_commit_stores_nothing_twice(app, world):
    line = events.stamp({"type": "email_click", "occurred_at": _iso(), "email": "jane@acme.com"})
    events.store([line])
    events.store([line])  # as if the drain died after commit and before trimming the list
    assert db.session.execute(select(func.count(Event.id))).scalar_one() == 1


def test_a_key_stored_by_another_writer_meanwhile_is_skipped_and_the_rest_kept(app, world, backend, monkeypatch):
    """PostgreSQL COPYs a batch's new events straight in; when a key it thought new was
    stored by someone else in between, the batch falls back to an insert that skips it."""
    if backend != "postgresql":
        pytest.skip("the COPY path is PostgreSQL's")
    taken = events.stamp({"type": "meeting", "occurred_at": _iso(), "email": "jane@acme.com", "dedup_key": "k1"})
    events.store([taken])
    monkeypatch.setattr(event_insert, "_known_keys", lambda cur, keys: set())  # the look-up misses it
    fresh = events.stamp({"type": "form_fill", "occurred_at": _iso(), "email": "jane@acme.com", "dedup_key": "k2"})
    result = events.store([taken, fresh])
    assert (result.stored, result.duplicates) == (1, 1)
    keys = db.session.execute(select(Event.dedup_key, Event.type).order_by(Event.id)).all()
    assert keys == [("k1", "meeting"), ("k2", "form_fill")]
    db.session.expire_all()
    assert db.session.get(Account, world["acme"].id).score == pytest.approx(25 + 15, rel=1e-3)  # counted once each


def test_events_for_unknown_people_are_kept_and_matched_when_they_appear(app, api, world):
    c = api("admin")
    c.post("/api/v1/events", json=[
        {"type": "form_fill", "occurred_at": _iso(timedelta(days=1)), "email": "new.person@initech.com"},
        {"type": "ad_click", "occurred_at": _iso(), "account_domain": "initech.com"},
        {"type": "form_fill", "occurred_at": _iso(), "email": "someone@gmail.com"},
    ])
    events.drain()
    assert db.session.execute(select(func.count(Event.id)).where(Event.account_id.is_(None))).scalar_one() == 3
    initech = Account(name="Initech", domain="initech.com")
    db.session.add(initech)
    db.session.flush()
    db.session.add(Contact(account_id=initech.id, email="new.person@initech.com"))
    db.session.commit()
    assert matching.match_pending() == 2
    matched = db.session.execute(select(Event.type, Event.contact_id.is_not(None))
                                 .where(Event.account_id == initech.id).order_by(Event.type)).all()
    assert matched == [("ad_click", False), ("form_fill", True)]
    db.session.expire_all()
    assert db.session.get(Account, initech.id).score > 15  # form fill (15, a day old) + ad click (3)
    # a free-mail address never makes an account
    assert db.session.execute(select(Event.account_id).where(Event.email == "someone@gmail.com")).scalar_one() is None


def _acme_and_its_pixel() -> tuple[Account, str]:
    """An empty database but for one account, and an open-pixel token for it."""
    empty_database(db.engine)
    acme = Account(name="Acme", domain="acme.com")
    db.session.add(acme)
    db.session.commit()
    return acme, tracking.open_token(1, None, acme.id)


def test_nothing_is_lost_while_redis_is_down(backend, instance_dir, redis_url, notified):
    """The endpoints answer and spool while Redis is unreachable; the drain stores every event."""
    dead = make_app(backend, instance_dir, "redis://127.0.0.1:1/0")
    with dead.app_context():
        acme, token = _acme_and_its_pixel()
        client = dead.test_client()
        for _ in range(25):
            assert client.get(f"/t/o/{token}.gif").status_code == 200
        key = add_site(["https://a.example"])
        assert client.post("/t/v", data=f'{{"type":"web_visit","url":"https://a.example/","visitor_id":"z",'
                                        f'"site":"{key}"}}', content_type="text/plain",
                           headers={"Origin": "https://a.example"}).status_code == 204
        account_id = acme.id
        db.session.remove()
    alive = make_app(backend, instance_dir, redis_url)
    with alive.app_context():
        result = events.drain()
        assert result.stored == 26
        opens = db.session.execute(select(func.count(Event.id)).where(
            Event.type == "email_open", Event.account_id == account_id)).scalar_one()
        assert opens == 25
        assert events.drain().stored == 0  # the spool was consumed exactly once
        db.session.remove()


def _redis_server(workdir, port):
    """A private redis-server with the append-only file on. ``appendfsync always``: every
    write is in the file before Redis answers, so what the test pushed before the kill is
    there after it (``everysec``, the production default, may postpone the write while a
    slow fsync runs -- up to two seconds under load -- and lose it to a SIGKILL)."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server on PATH")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                             "--appendfsync", "always", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    client = redis_lib.Redis(port=port)
    for _ in range(400):
        try:
            client.ping()
            return proc
        except redis_lib.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("redis-server did not start")


def test_nothing_is_lost_when_redis_crashes_and_restarts(backend, instance_dir, tmp_path, notified):
    """Opens pushed before a crash (kill -9) survive in the append-only file; opens while
    Redis is down go to the spool; after the restart the drain stores every one."""
    port = _free_port()
    server = _redis_server(tmp_path, port)
    try:
        app = make_app(backend, instance_dir, f"redis://127.0.0.1:{port}/0")
        with app.app_context():
            acme, token = _acme_and_its_pixel()
            client = app.test_client()
            for _ in range(10):
                assert client.get(f"/t/o/{token}.gif").status_code == 200
            server.send_signal(signal.SIGKILL)  # a crash: nothing drained yet
            server.wait()
            for _ in range(5):
                assert client.get(f"/t/o/{token}.gif").status_code == 200  # spooled
            server = _redis_server(tmp_path, port)  # the same data directory, as a restarted service
            for _ in range(10):
                assert client.get(f"/t/o/{token}.gif").status_code == 200
            assert events.drain().stored == 25
            opens = db.session.execute(select(func.count(Event.id)).where(
                Event.type == "email_open", Event.account_id == acme.id)).scalar_one()
            assert opens == 25
            db.session.remove()
    finally:
        server.kill()
        server.wait()


def test_an_erased_persons_email_is_never_stored_again(app, api, world):
    c = api("admin")
    assert c.delete(f"/api/v1/contacts/{world['bob'].id}").status_code in (200, 204)
    c.post("/api/v1/events", json=[{"type": "web_visit", "occurred_at": _iso(), "email": "bob@acme.com",
                                    "url": "https://v.example/"}])
    events.drain()
    row = db.session.execute(select(Event.email, Event.contact_id, Event.domain)).one()
    assert row == (None, None, None)
