"""Tracking links as a recipient's mail program and browser use them."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import itsdangerous
import pytest
from sqlalchemy import event, select

from abm import tracking
from abm.db import db
from abm.models import Contact, Event
from abm.redis_conn import get_redis
from abm.services import events, touches
from abm.services.events import intake
from abm.tracking import _serializer
from connectors.email_message import add_tracking
from tests.engagement.conftest import SITE_ORIGIN, add_site, queued


def test_open_pixel_records_one_open_matched_to_the_touch(app, client, world):
    t = world["touch"]
    token = tracking.open_token(t.id, world["jane"].id, world["acme"].id)
    resp = client.get(f"/t/o/{token}.gif")
    assert resp.status_code == 200 and resp.mimetype == "image/gif"
    assert "no-store" in resp.headers["Cache-Control"]
    assert [e["type"] for e in queued(app)] == ["email_open"]
    events.drain()
    stored = db.session.execute(select(Event)).scalar_one()
    assert (stored.type, stored.account_id, stored.contact_id, stored.touch_id, stored.playbook_id) == (
        "email_open", world["acme"].id, world["jane"].id, t.id, world["playbook"].id)


def test_forged_pixel_still_answers_but_records_nothing(app, client, world):
    token = tracking.open_token(world["touch"].id, world["jane"].id, world["acme"].id)
    other = tracking.open_token(world["touch"].id, world["bob"].id, world["globex"].id)
    forged = [f"{token[:-2]}xx",  # a signature altered
              f"{other.split('.')[0]}.{token.split('.')[1]}",  # a payload swapped under another's signature
              tracking.contact_token(world["jane"].id),  # genuinely signed, but not as a pixel
              "WzEsMiwzXQ"]  # [1,2,3] with no signature
    for bad in forged:
        resp = client.get(f"/t/o/{bad}.gif")
        assert resp.status_code == 200 and resp.mimetype == "image/gif"
    assert queued(app) == []


def test_the_pixel_queries_no_database_and_sets_no_cookie(app, client, world):
    token = tracking.open_token(world["touch"].id, world["jane"].id, world["acme"].id)
    statements = []
    record = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        resp = client.get(f"/t/o/{token}.gif", headers={"User-Agent": "Mail/1.0"})
        head = client.head(f"/t/o/{token}.gif")
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert statements == []
    assert resp.status_code == 200 and resp.data.startswith(b"GIF89a") and len(resp.data) == 42
    assert "Set-Cookie" not in resp.headers and "no-store" in resp.headers["Cache-Control"]
    assert head.status_code == 200 and head.data == b"" and head.headers["Content-Type"] == "image/gif"
    assert queued(app)[0]["properties"] == {"user_agent": "Mail/1.0"}


def test_a_pixel_after_redis_dropped_the_kept_connection_still_reaches_redis(app, client, world, instance_dir):
    token = tracking.open_token(world["touch"].id, world["jane"].id, world["acme"].id)
    assert client.get(f"/t/o/{token}.gif").status_code == 200  # the connection this thread keeps
    kept = intake._pushers.held[2]
    kept.send_command("CLIENT", "ID")
    get_redis().client_kill_filter(_id=kept.read_response())  # as a restarted or idle-timing-out Redis
    assert client.get(f"/t/o/{token}.gif").status_code == 200
    assert [e["type"] for e in queued(app)] == ["email_open", "email_open"]
    spool = instance_dir / "spool" / "events.jsonl"
    assert not spool.exists() or spool.read_text() == ""


def test_tracked_links_redirect_only_to_the_links_of_that_email(app, client, world):
    html = ('<p><a href="https://acme-vendor.example/pricing?utm=1">Pricing</a> '
            '<a href="https://acme-vendor.example/case-study">Read</a></p>')
    t = world["touch"]
    info = tracking.tracking_for_email(t.id, world["jane"].id, world["acme"].id, html)
    tracked_html = add_tracking(html, info["open_url"], info["click_url_template"])
    hrefs = [m.replace("&amp;", "&") for m in re.findall(r'href="([^"]+)"', tracked_html)]
    assert len(hrefs) == 2 and all(h.startswith("http://abm.test/t/c/") for h in hrefs)
    assert 'src="http://abm.test/t/o/' in tracked_html

    resp = client.get(hrefs[0].replace("http://abm.test", ""))
    assert resp.status_code == 302
    dest = urlsplit(resp.headers["Location"])
    assert (dest.scheme, dest.netloc, dest.path) == ("https", "acme-vendor.example", "/pricing")
    query = parse_qs(dest.query)
    assert query["utm"] == ["1"]
    assert tracking.read("contact", query["abm_c"][0]) == world["jane"].id

    # the same genuine token cannot be pointed anywhere else: no open redirect
    token = hrefs[0].split("/t/c/")[1].split("?")[0]
    for evil in ("https://evil.example/phish", "javascript:alert(1)", "//evil.example"):
        bad = client.get(f"/t/c/{token}", query_string={"u": evil})
        assert bad.status_code == 400 and "Location" not in bad.headers
    tampered = client.get(f"/t/c/{token[:-3]}abc", query_string={"u": "https://acme-vendor.example/case-study"})
    assert tampered.status_code == 400
    assert [e["type"] for e in queued(app)] == ["email_click"]


def test_one_click_unsubscribe_suppresses_the_contact_without_cookie_or_redirect(app, world):
    jane = world["jane"]
    url = tracking.unsubscribe_url(jane.id)
    path = urlsplit(url).path
    fresh = app.test_client(use_cookies=False)
    resp = fresh.post(path, data="List-Unsubscribe=One-Click",
                      content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 200 and "Location" not in resp.headers
    db.session.expire_all()
    assert db.session.get(Contact, jane.id).unsubscribed_at is not None
    assert [e["type"] for e in queued(app)] == ["unsubscribe"]
    assert fresh.post("/u/not-a-token", data="List-Unsubscribe=One-Click",
                      content_type="application/x-www-form-urlencoded").status_code == 400


def test_unsubscribe_page_asks_then_confirms(app, client, world):
    bob = world["bob"]
    path = urlsplit(tracking.unsubscribe_url(bob.id)).path
    page = client.get(path)
    assert page.status_code == 200 and b"Unsubscribe from these emails?" in page.data
    done = client.post(path, data={"confirm": "yes"})
    assert done.status_code == 200 and b"You are unsubscribed" in done.data
    db.session.expire_all()
    assert db.session.get(Contact, bob.id).unsubscribed_at is not None
    assert b"already unsubscribed" in client.get(path).data


def test_snippet_is_small_and_first_party(client):
    resp = client.get("/t/snippet.js")
    assert resp.status_code == 200 and resp.mimetype == "application/javascript"
    body = resp.data.decode()
    assert len(resp.data) < 5000
    assert not re.search(r"https?://", body), "the snippet must not call any third party"


def test_visit_beacon_identifies_a_contact_from_a_tracked_link(app, client, world):
    key = add_site()
    token = tracking.contact_token(world["jane"].id)
    headers = {"Origin": SITE_ORIGIN}
    resp = client.post("/t/v", data='{"type":"web_visit","url":"https://acme-vendor.example/pricing",'
                                     f'"site":"{key}","visitor_id":"v1","contact":"{token}","title":"Pricing"}}',
                       content_type="text/plain", headers=headers)
    assert resp.status_code == 204 and resp.headers["Access-Control-Allow-Origin"] == SITE_ORIGIN
    client.post("/t/v", data='{"type":"form_fill","url":"https://acme-vendor.example/demo",'
                             f'"site":"{key}","visitor_id":"v2","email":"Bob@Acme.com"}}', content_type="text/plain",
                headers=headers)
    forged = client.post("/t/v", data='{"type":"web_visit","url":"https://acme-vendor.example/",'
                                      f'"site":"{key}","contact":"forged"}}', content_type="text/plain",
                         headers=headers)
    assert forged.status_code == 204
    assert client.post("/t/v", data="not json", content_type="text/plain", headers=headers).status_code == 400
    events.drain()
    rows = db.session.execute(select(Event.type, Event.contact_id, Event.account_id).order_by(Event.id)).all()
    assert rows == [("web_visit", world["jane"].id, world["acme"].id),
                    ("browser_form_fill", world["bob"].id, world["acme"].id),
                    ("web_visit", None, None)]


def test_the_engines_unsubscribe_links_work_and_owner_links_explain_themselves(app, world):
    jane = world["jane"]
    path = urlsplit(touches.unsubscribe_url(jane.id)).path
    fresh = app.test_client(use_cookies=False)
    resp = fresh.post(path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 200
    db.session.expire_all()
    assert db.session.get(Contact, jane.id).unsubscribed_at is not None
    owner_path = urlsplit(touches.unsubscribe_url(f"owner:{world['acme'].id}")).path
    page = fresh.get(owner_path)
    assert page.status_code == 200 and b"internal notification" in page.data
    assert fresh.post(owner_path, data="List-Unsubscribe=One-Click",
                      content_type="application/x-www-form-urlencoded").status_code == 200


@pytest.mark.parametrize("timed", [False, True])
def test_fast_signed_tokens_are_itsdangerous_tokens_both_ways(timed):
    """The signer made once (abm.tracking) writes what a stock itsdangerous serializer
    reads and reads what it writes, for short and long payloads; a changed byte or
    another key or salt is refused."""
    stock_class = itsdangerous.URLSafeTimedSerializer if timed else itsdangerous.URLSafeSerializer
    ours, stock = _serializer("k" * 32, "open", timed=timed), stock_class("k" * 32, salt="open")
    values = [7, "owner:12", [1, None, 3], [12, 34, 56, ["0123456789abcdef"] * 6], {"a": [1] * 40}]
    for value in values:
        token = ours.dumps(value)
        assert stock.loads(token) == value and ours.loads(stock.dumps(value)) == value
        if not timed and len(token) < 60:
            assert token == stock.dumps(value)  # short ids: the same bytes
        tampered = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
        for reader in (stock_class("k" * 32, salt="open"), stock_class("k" * 32, salt="click"),
                       stock_class("x" * 32, salt="open")):
            with pytest.raises(itsdangerous.BadSignature):
                reader.loads(tampered if reader.salt == b"open" and reader.secret_key == b"k" * 32 else token)
