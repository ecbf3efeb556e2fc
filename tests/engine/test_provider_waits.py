"""The engine waits as long as the provider says, on an injectable clock: Meta's throttling
code 17 with its usage header (``estimated_time_to_regain_access: 3`` minutes) keeps the
touches back for 180 s, not the engine's few seconds of backoff, and they go out then."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from abm.db import db
from abm.models import Touch
from abm.services import connectors, delivery
from abm.services import playbooks as service
from tests.connectors.fakes.meta import FakeMeta
from tests.connectors.harness import serve
from tests.engine.conftest import make_account
from workers import dispatcher, jobs

TOKEN = "meta-token"
PLAYBOOK = """version: 1
key: ads-pb
name: Ads
audience:
  where: {tier: [1]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: add
    audience: {connector: meta, list: "Tier 1", action: add}
"""


def test_metas_code_17_waits_its_180_seconds_then_the_touches_go_out(app, clock):
    fake = FakeMeta(token=TOKEN)
    with serve(fake.app) as server:
        connectors.create({"type": "meta", "name": "meta", "settings": {
            "access_token": TOKEN, "ad_account_id": "777", "base_url": server.base_url, "read_timeout": 5}})
        for i in range(3):
            make_account(f"Ad{i}")
        service.apply(PLAYBOOK)
        service.activate("ads-pb", now=clock())
        dispatcher.dispatch(now=clock(), enqueue=False)
        ids = list(db.session.execute(select(Touch.id).order_by(Touch.id)).scalars())
        assert len(ids) == 3
        usage = json.dumps({"777": [{"type": "ads_management", "call_count": 100,
                                     "estimated_time_to_regain_access": 3}]})
        fake.fail("/users", 400, {"error": {"message": "User request limit reached", "code": 17}},
                  headers={"X-Business-Use-Case-Usage": usage})
        assert jobs.send_touches(ids, "meta") == {"claimed": 3, "retry": 3}
        db.session.expire_all()
        waits = {t.not_before - clock() for t in db.session.execute(select(Touch)).scalars()}
        assert waits == {timedelta(seconds=180)}  # Meta's hint, not the first backoff (at most 5 s)
        assert delivery.retry_due(clock() + timedelta(seconds=179)) == []
        assert jobs.send_touches(ids, "meta") == {"claimed": 0}  # a stray job sends nothing early
        clock.advance(timedelta(seconds=180))
        assert sorted(i for i, _ in delivery.retry_due(clock())) == ids
        assert jobs.send_touches(ids, "meta") == {"claimed": 3, "sent": 3}
    assert sum(len(members) for members in fake.members.values()) == 3
