"""Scores: weights, URL rules, decay, levels; incremental updates agree with a full recompute."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import select, update

from abm.db import db, utcnow
from abm.models import Account
from abm.redis_conn import get_redis
from abm.services import events, scores
from abm.services import settings as settings_service


def _line(etype, email=None, days_ago=0.0, url=None, domain=None, now=None):
    now = now or utcnow()
    e = {"type": etype, "occurred_at": (now - timedelta(days=days_ago)).isoformat()}
    if email:
        e["email"] = email
    if domain:
        e["account_domain"] = domain
    if url:
        e["url"] = url
    return events.stamp(e)


def test_weights_url_rules_and_half_life_decay(app, world):
    now = utcnow()
    events.store([
        _line("form_fill", "jane@acme.com", days_ago=0, now=now),                      # 15
        _line("meeting", "bob@acme.com", days_ago=30, now=now),                        # 25 / 2
        _line("web_visit", "jane@acme.com", url="https://v.example/pricing", now=now),  # rule: 8
        _line("web_visit", "jane@acme.com", url="https://v.example/blog", now=now),     # type: 2
    ], now=now)
    db.session.expire_all()
    acme = db.session.get(Account, world["acme"].id)
    assert acme.score == pytest.approx(15 + 12.5 + 8 + 2, rel=1e-6)
    assert acme.engagement == "warm"  # warm at 20, hot at 50

    b = scores.breakdown(acme.id, now=now)
    assert b["score"] == pytest.approx(37.5, abs=0.01)
    assert {r["type"]: r["points"] for r in b["by_type"]} == {
        "form_fill": 15.0, "meeting": 12.5, "web_visit": 10.0}
    by_contact = {r["name"]: r["points"] for r in b["by_contact"]}
    assert by_contact == {"Jane": 25.0, "Bob": 12.5}
    assert sum(e["points"] for e in b["events"]) == pytest.approx(37.5, abs=0.01)


def test_incremental_updates_agree_with_a_full_recompute(app, world):
    rng = random.Random(7)
    now = utcnow()
    emails = ["jane@acme.com", "bob@acme.com"]
    types = ["email_open", "email_click", "web_visit", "form_fill", "meeting", "ad_click"]
    for _batch in range(5):
        lines = [_line(rng.choice(types), email=rng.choice(emails) if rng.random() < .7 else None,
                       domain=None if rng.random() < .7 else rng.choice(["acme.com", "globex.com"]),
                       days_ago=rng.uniform(0, 120), url=rng.choice([None, "https://v.example/pricing"]), now=now)
                 for _ in range(40)]
        lines = [ln for ln in lines if '"email"' in ln or '"account_domain"' in ln]
        events.store(lines, now=now)
    db.session.expire_all()
    incremental = {a.id: a.score for a in db.session.execute(select(Account)).scalars()}
    scores.recompute(now)
    db.session.expire_all()
    full = {a.id: a.score for a in db.session.execute(select(Account)).scalars()}
    assert incremental.keys() == full.keys()
    for aid in full:
        assert incremental[aid] == pytest.approx(full[aid], rel=1e-9, abs=1e-9)
    assert full[world["acme"].id] > 0


def test_recompute_zeroes_accounts_without_events_and_leaves_updated_at(app, world):
    globex = world["globex"]  # no events
    db.session.execute(update(Account).where(Account.id == globex.id).values(score_ref=1e30, engagement="hot"))
    db.session.commit()
    before = db.session.get(Account, globex.id).updated_at
    now = utcnow()
    events.store([_line("meeting", "jane@acme.com", now=now)], now=now)
    assert scores.recompute(now) == 1  # one account has events
    db.session.expire_all()
    g = db.session.get(Account, globex.id)
    assert (g.score_ref, g.score, g.engagement) == (0.0, 0.0, "cold")
    assert g.updated_at == before  # a score is not an edit of the account
    assert db.session.get(Account, world["acme"].id).score == pytest.approx(25)


def test_a_change_of_weights_rescores_history(app, world, make_user):
    now = utcnow()
    events.store([_line("meeting", "jane@acme.com", now=now)], now=now)
    db.session.expire_all()
    assert db.session.get(Account, world["acme"].id).score == pytest.approx(25)
    weights = dict(settings_service.current()["weights"], meeting=40)
    settings_service.update({"weights": weights, "half_life_days": 10}, make_user("admin").id)

    queued = [j.func_name for j in Queue("events", connection=get_redis()).jobs]
    assert queued == ["workers.engagement_jobs.recompute_scores"]  # the change re-scores history by itself
    scores.recompute(now)
    db.session.expire_all()
    acme = db.session.get(Account, world["acme"].id)
    assert acme.score == pytest.approx(40) and acme.engagement == "warm"


def test_the_engine_is_told_which_accounts_changed_and_their_scores_before(app, world, notified):
    now = utcnow()
    events.store([_line("meeting", "jane@acme.com", now=now), _line("ad_click", domain="globex.com", now=now)],
                 now=now)
    ids, by_type, previous = notified[-1]
    assert ids == {world["acme"].id, world["globex"].id}
    assert by_type == {"meeting": {world["acme"].id}, "ad_click": {world["globex"].id}}
    assert previous == {world["acme"].id: 0.0, world["globex"].id: 0.0}
