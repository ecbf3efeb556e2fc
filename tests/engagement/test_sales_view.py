"""The account executive's view: my accounts, the stage by engagement matrix, coverage."""

from __future__ import annotations

from datetime import timedelta

from abm.db import db, utcnow
from abm.models import Account, ScoreSnapshot
from abm.services import events, sales_view, scores
from abm.services import settings as settings_service
from tests.engagement.test_scores import _line


def test_my_accounts_sorts_by_score_and_by_change_this_week(app, world, make_user):
    ae = make_user("ae")
    acme, globex = world["acme"], world["globex"]
    acme.owner_id = globex.owner_id = ae.id
    db.session.commit()
    now = utcnow()
    events.store([_line("meeting", "jane@acme.com", days_ago=10, now=now),
                  _line("meeting", "jane@acme.com", days_ago=9, now=now),
                  _line("form_fill", domain="globex.com", days_ago=1, now=now)], now=now)
    rows = sales_view.my_accounts(ae.id, now=now)["rows"]
    assert [r["name"] for r in rows] == ["Acme", "Globex"]  # acme has the higher score
    by_change = sales_view.my_accounts(ae.id, {"sort": "change"}, now=now)["rows"]
    assert [r["name"] for r in by_change] == ["Globex", "Acme"]  # globex gained this week, acme only decayed
    assert by_change[0]["change_week"] > 0 > by_change[1]["change_week"]
    # a page sorted by change is the top by change among all the owner's accounts, not among the top scores
    first = sales_view.my_accounts(ae.id, {"sort": "change"}, now=now, page_size=1)
    assert [r["name"] for r in first["rows"]] == ["Globex"] and (first["total"], first["pages"]) == (2, 2)
    second = sales_view.my_accounts(ae.id, {"sort": "score"}, page=2, now=now, page_size=1)
    assert [r["name"] for r in second["rows"]] == ["Globex"] and second["page"] == 2
    assert len(rows[0]["trend"]) == 30 and rows[0]["trend"][-1] == rows[0]["score"]
    assert rows[0]["last_touch_at"] is not None  # the sent intro email


def test_the_matrix_names_the_cells_sales_acts_on(app, world):
    db.session.add_all([
        Account(name="Hot target", domain="hot1.com", stage="target", engagement="hot"),
        Account(name="Hot mqa", domain="hot2.com", stage="mqa", engagement="hot"),
        Account(name="Cold opp", domain="cold1.com", stage="opportunity", engagement="cold"),
        Account(name="Hot opp", domain="hot3.com", stage="opportunity", engagement="hot"),
    ])
    db.session.commit()
    m = sales_view.matrix()
    assert m["counts"]["target"] == {"cold": 1, "warm": 0, "hot": 1}  # globex is a cold target
    assert m["hot_not_in_opportunity"]["count"] == 2
    assert m["opportunities_gone_cold"]["count"] == 1
    assert m["stages"][:7] == ["target", "aware", "engaged", "mqa", "opportunity", "customer", "lost"]


def test_both_matrices_come_from_one_count_for_the_workspace_and_for_a_seller(app, world, make_user):
    """The matrix page's stage and fit matrices (one grouped query) say what the accounts are."""
    ae = make_user("ae")
    db.session.add_all([
        Account(name="Hot fit", domain="hot1.com", stage="target", engagement="hot", fit_score=85, owner_id=ae.id),
        Account(name="Warm mid", domain="warm1.com", stage="target", engagement="warm", fit_score=55, owner_id=ae.id),
        Account(name="Cold opp", domain="cold1.com", stage="opportunity", engagement="cold", fit_score=10),
    ])
    db.session.commit()
    stages, fits = sales_view.matrices()
    assert stages == sales_view.matrix()
    assert stages["counts"]["target"] == {"cold": 1, "warm": 1, "hot": 1}  # globex is a cold target
    assert fits["counts"]["high"] == {"cold": 0, "warm": 0, "hot": 1}
    assert fits["counts"]["low"]["cold"] == 1 and fits["high_fit_not_engaged"] == 0
    total = sum(sum(c.values()) for c in stages["counts"].values())
    assert sum(sum(c.values()) for c in fits["counts"].values()) == total  # every account in both
    mine_stages, mine_fits = sales_view.matrices(ae.id)
    assert mine_stages == sales_view.matrix(ae.id)
    assert mine_stages["counts"]["target"] == {"cold": 0, "warm": 1, "hot": 1}
    assert mine_fits["counts"]["medium"]["warm"] == 1 and mine_fits["counts"]["none"] == {"cold": 0, "warm": 0,
                                                                                          "hot": 0}


def test_buying_committee_coverage(app, world):
    now = utcnow()
    events.store([_line("email_click", "jane@acme.com", now=now)], now=now)
    cov = {r["role"]: r for r in sales_view.coverage(world["acme"].id, now=now + timedelta(minutes=1))}
    assert cov["champion"] == {"role": "champion", "contacts": 1, "reached": 1, "engaged": 1}
    assert cov["user"] == {"role": "user", "contacts": 1, "reached": 0, "engaged": 0}
    assert cov["decision_maker"]["contacts"] == 0


def test_change_this_week_is_exact_without_and_with_snapshots(app, world, make_user):
    """Last week's score comes from score_ref less this week's events: the same figure as
    one computed from the events up to then, and a stale snapshot does not change it."""
    ae = make_user("ae")
    acme = world["acme"]
    acme.owner_id = ae.id
    db.session.commit()
    now = utcnow()
    events.store([_line("meeting", "jane@acme.com", days_ago=20, now=now),
                  _line("email_click", "jane@acme.com", days_ago=8, now=now),
                  _line("form_fill", "jane@acme.com", days_ago=3, now=now),
                  _line("web_visit", "jane@acme.com", days_ago=1, url="https://vendor.example/pricing", now=now)],
                 now=now)
    expected = scores.scores_at([acme.id], now - timedelta(days=7))[acme.id]
    assert expected > 0
    row = next(r for r in sales_view.my_accounts(ae.id, now=now)["rows"] if r["id"] == acme.id)
    assert abs(row["change_week"] - (row["score"] - expected)) <= 0.1  # both shown rounded to 0.1
    assert row["change_week"] > 0  # the form fill and the pricing visit outweigh a week of decay

    db.session.add(ScoreSnapshot(account_id=acme.id, day=(now - timedelta(days=7)).date(), score=999.0))
    db.session.commit()
    again = next(r for r in sales_view.my_accounts(ae.id, now=now)["rows"] if r["id"] == acme.id)
    assert again["change_week"] == row["change_week"]


def test_the_trend_line_places_each_daily_snapshot_on_its_day(app, world):
    acme, globex = world["acme"], world["globex"]
    now = utcnow()
    today = now.date()
    db.session.add_all([ScoreSnapshot(account_id=acme.id, day=today - timedelta(days=d), score=float(d))
                        for d in (30, 29, 10, 1)] + [ScoreSnapshot(account_id=globex.id, day=today, score=7.5)])
    db.session.commit()
    series = scores.trend([acme.id, globex.id], days=30, now=now)
    assert series[acme.id][0] == 29.0 and series[acme.id][19] == 10.0 and series[acme.id][28] == 1.0
    assert sum(series[acme.id]) == 40.0  # the day 30 days ago is outside the line
    assert series[globex.id] == [0.0] * 29 + [7.5]


def test_my_accounts_filters(app, world, make_user):
    ae = make_user("ae")
    acme, globex = world["acme"], world["globex"]
    acme.owner_id = globex.owner_id = ae.id
    acme.tier, globex.tier = 1, 2
    db.session.commit()
    now = utcnow()
    events.store([_line("meeting", "jane@acme.com", days_ago=10, now=now),
                  _line("meeting", "bob@acme.com", days_ago=10, now=now),
                  _line("form_fill", domain="globex.com", days_ago=1, now=now)], now=now)
    stages = settings_service.current()["stages"]

    def names(**raw):
        return [r["name"] for r in sales_view.my_accounts(ae.id, sales_view.clean_filters(raw, stages), now=now)["rows"]]

    assert names(q="GLOB") == ["Globex"] and names(q="acme.c") == ["Acme"] and names(q="%") == []
    assert names(stage="aware") == ["Acme"] and names(stage="nonsense") == ["Acme", "Globex"]
    assert names(level="warm") == ["Acme"] and names(level="cold") == ["Globex"]
    assert names(tier="2") == ["Globex"] and names(tier="x") == ["Acme", "Globex"]
    assert names(changed="week") == ["Globex"]  # acme's meeting was ten days ago
    assert names(changed="week", level="warm") == []
