"""The dry run against the engine: on a seeded workspace, what ``plan`` predicts is what
the engine then does, with a simulated clock that moves from one due instant to the next.

The part that depends on future engagement: the plan assumes nobody engages (no opens,
clicks, visits) and no stage moved from outside. The engine here runs with no
engagement either, so every count must match exactly; a ``wait_until`` on engagement
takes its timeout path in both, and the plan marks the steps it leads to as depending
on engagement.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select, text

from abm.db import db, utcnow
from abm.models import Account, Contact, Enrollment, Event, Touch, User
from abm.models import Playbook as PlaybookRow
from abm.services import playbooks as service
from abm.services import simulation, touch_search
from abm.services.dry_run import POSTPONED_BY_WINDOW
from tests.engine.conftest import make_account
from workers import dispatcher

# Another playbook already running on part of the audience: higher priority, it takes
# cap slots first, and its touches count against the same contacts' caps.
OTHER = """version: 1
key: other
name: Other
priority: 90
audience:
  where: {industry: [fintech]}
steps:
  - id: news
    email:
      to: {roles: [decision_maker, champion]}
      subject: "News for {{ account.name }}"
      body: "<p>News</p>"
  - wait: 1d
  - id: more-news
    email:
      to: {roles: [decision_maker]}
      subject: "More news"
      body: "<p>More</p>"
"""

PLANNED = """version: 1
key: planned
name: Planned
priority: 40
audience:
  where: {tier: [1, 2], stage: {not_in: [customer]}}
holdout: 10%
exit_when: {stage: [customer]}
caps:
  - {per: account, max: 3, within: 7d}
on_cap: defer
max_delay: 21d
steps:
  - id: intro
    email:
      to: {roles: [decision_maker, champion]}
      subject: "Hello {{ account.name }}"
      body: "<p>Hi {{ contact.first_name }}</p>"
  - wait: 2d
  - id: fork
    branch:
      if: {industry: [fintech]}
      then: fintech-note
  - id: generic-note
    email:
      to: {roles: [decision_maker]}
      subject: "A note"
      body: "<p>Note</p>"
  - id: tell-owner
    alert:
      to: owner
      message: "{{ account.name }} got a note"
  - id: fintech-note
    email:
      to: {roles: [champion]}
      subject: "For fintech"
      body: "<p>Fintech</p>"
  - id: wait-click
    wait_until:
      condition: {activity: {type: [email_click], within: 7d}}
      timeout: 1d
  - id: last
    when: {tier: [1]}
    email:
      to: {roles: [decision_maker]}
      subject: "Last one"
      body: "<p>Last</p>"
  - id: promote
    set_stage: engaged
"""


def _seed(owner: User) -> None:
    zones = [None, "America/New_York", "Asia/Tokyo", "Europe/Berlin"]
    for n in range(48):
        contacts = [("decision_maker", "CISO"), ("champion", "Engineer")][: 1 + n % 3 % 2] if n % 7 else []
        account = make_account(
            f"Acct{n:02d}", tier=1 + n % 3, industry="fintech" if n % 2 else "retail",
            stage="customer" if n % 11 == 0 else "target", contacts=contacts,
            owner=owner if n % 4 else None, timezone=zones[n % 4])
        if n % 5 == 0:
            db.session.execute(Contact.__table__.update().where(Contact.account_id == account.id, Contact.email.like("c0@%"))
                               .values(unsubscribed_at=utcnow()))
    db.session.commit()


def _next_due():
    running = db.session.execute(select(func.min(Enrollment.next_run_at)).join(
        PlaybookRow, PlaybookRow.id == Enrollment.playbook_id).where(
        Enrollment.state.in_(("active", "waiting")), PlaybookRow.status == "active")).scalar_one()
    scheduled = db.session.execute(select(func.min(Touch.due_at)).where(Touch.status == "scheduled")).scalar_one()
    found = [t for t in (running, scheduled) if t is not None]
    return min(found) if found else None


def _run_engine(clock, worker, until, postponed: dict | None = None, key: str = "planned") -> None:
    """The dispatcher at every instant something is due, then the workers, until nothing is.

    ``postponed`` collects the touches of ``key`` the engine postponed (stored as
    ``scheduled``, to a send window's opening or a cap's free slot): touch id -> (step id,
    reason), read after each dispatch, since a touch's reason is cleared when it is sent."""
    while True:
        if postponed is not None:
            _collect_postponed(postponed, key)
        due = _next_due()
        if due is None or due > until:
            return
        clock.at = max(clock.at, due)
        dispatcher.dispatch(now=clock.at)
        if postponed is not None:
            _collect_postponed(postponed, key)
        worker()


def _collect_postponed(seen: dict, key: str) -> None:
    rows = db.session.execute(select(Touch.id, Touch.step_id, Touch.error).join(
        PlaybookRow, PlaybookRow.id == Touch.playbook_id).where(
        PlaybookRow.key == key, Touch.status == "scheduled")).all()
    for row in rows:
        seen.setdefault(row.id, (row.step_id, row.error or POSTPONED_BY_WINDOW))


def test_the_plan_is_what_the_engine_then_does(app, clock, worker, sent_log):
    owner = User(email="ae@ourco.example", role="ae", name="AE")
    db.session.add(owner)
    db.session.commit()
    _seed(owner)
    service.apply(OTHER)
    service.activate("other", now=clock())
    dispatcher.dispatch(now=clock())  # the other playbook's first emails are out: they count against caps
    worker()
    clock.advance(timedelta(hours=3))

    plan = service.plan(PLANNED, now=clock(), account="acct01.example")
    service.apply(PLANNED)
    activated = service.activate("planned", now=clock())
    assert (activated["enrolled"], activated["held_out"]) == (plan["entering"], plan["held_out"])
    assert plan["entering"] > 20 and plan["held_out"] > 0

    postponed_by_engine: dict = {}
    _run_engine(clock, worker, until=clock() + timedelta(days=30), postponed=postponed_by_engine)
    row = service.get("planned")
    touches = db.session.execute(select(Touch).where(Touch.playbook_id == row.id)).scalars().all()
    assert touches and not [t for t in touches if t.status in ("queued", "scheduled", "failed")]

    for step in plan["steps"]:
        mine = [t for t in touches if t.step_id == step["id"]]
        assert step.get("touches", 0) == sum(1 for t in mine if t.status == "sent"), step["id"]
        assert step.get("suppressed", {}) == dict(Counter(t.error for t in mine if t.status == "suppressed")), step
        assert step["skipped"] == sum(1 for t in mine if t.status == "skipped"), step["id"]
        # postponed (by a send window, or by a cap with on_cap: defer), by reason, as the engine did
        assert step.get("postponed", {}) == dict(Counter(
            reason for step_id, reason in postponed_by_engine.values() if step_id == step["id"])), step
    sent_by_channel = Counter(t.channel for t in touches if t.status == "sent")
    assert plan["channels"] == dict(sent_by_channel)
    ended = Counter(f"{e.state}: {e.exit_reason}" for e in db.session.execute(select(Enrollment).where(
        Enrollment.playbook_id == row.id, Enrollment.state != "held_out")).scalars())
    assert plan["outcomes"] == dict(ended)

    # What the test is about happened: caps postponed touches (on_cap: defer), windows too, the
    # branch went both ways.
    reasons = {reason for step in plan["steps"] for reason in step.get("suppressed", {})}
    assert "unsubscribed" in reasons
    postponed = {reason for step in plan["steps"] for reason in step.get("postponed") or {}}
    assert "outside the send window" in postponed
    assert any(r.startswith("postponed: capped") for r in postponed)  # on_cap: defer, within max_delay
    by_id = {step["id"]: step for step in plan["steps"]}
    assert by_id["generic-note"]["reached"] and by_id["fintech-note"]["reached"]
    assert not by_id["intro"]["depends_on_engagement"] and by_id["last"]["depends_on_engagement"]
    # The schedule of one account is the engine's touches of that account, in time order.
    account_touches = sorted((t for t in touches if t.account_id == _account_id("acct01.example")),
                             key=lambda t: (t.due_at, t.step_index))
    assert [(s["step"], s["at"]) for s in plan["schedule"]["touches"]] == [
        (t.step_id, t.due_at.isoformat()) for t in account_touches]


def _account_id(domain: str) -> int:
    return db.session.execute(select(Account.id).where(Account.domain == domain)).scalar_one()


def test_a_simulation_cut_short_by_its_limit_says_so(app, clock, sent_log, monkeypatch):
    for n in range(3):
        make_account(f"Cut{n}", tier=1)
    monkeypatch.setattr(simulation, "MAX_ROUNDS", 1)
    plan = service.plan(PLANNED, now=clock())
    assert any("instant limit of 1 instants" in w and "later ones are undercounted" in w
               for w in plan["warnings"])
    assert plan["limit"]["limit"] == "instants" and plan["limit"]["line"] is not None
    assert plan["steps"][0]["reached"] == plan["entering"] and plan["steps"][3]["reached"] == 0


def test_per_step_results_are_the_touches_and_events_tables(app, clock, worker, sent_log):
    """The per-step counts (the playbook page's) against independent queries of the
    touches and events tables; the search they open pages through every touch once."""
    owner = User(email="ae2@ourco.example", role="manager", name="M")
    db.session.add(owner)
    db.session.commit()
    _seed(owner)
    service.apply(PLANNED)
    service.activate("planned", now=clock())
    dispatcher.dispatch(now=clock())
    worker()
    row = service.get("planned")
    sent = db.session.execute(select(Touch).where(Touch.playbook_id == row.id, Touch.status == "sent")
                              .order_by(Touch.id)).scalars().all()
    for n, touch in enumerate(sent):
        db.session.add(Event(type="email_open", occurred_at=clock(), account_id=touch.account_id, touch_id=touch.id,
                             playbook_id=row.id, properties={}))
        if n % 2:  # twice: still one opened touch
            db.session.add(Event(type="email_open", occurred_at=clock(), account_id=touch.account_id,
                                 touch_id=touch.id, playbook_id=row.id, properties={}))
        if n % 3 == 0:
            db.session.add(Event(type="email_click", occurred_at=clock(), account_id=touch.account_id,
                                 touch_id=touch.id, playbook_id=row.id, properties={}))
    db.session.commit()

    results = touch_search.step_results(row.id)["intro"]
    independent = dict(db.session.execute(text(
        "SELECT status, count(*) FROM touches WHERE playbook_id = :p AND step_id = 'intro' GROUP BY status"),
        {"p": row.id}).all())
    assert results["statuses"] == independent
    opened = db.session.execute(text(
        "SELECT count(DISTINCT t.id) FROM touches t JOIN events e ON e.touch_id = t.id "
        "WHERE t.playbook_id = :p AND t.step_id = 'intro' AND e.type = 'email_open'"), {"p": row.id}).scalar_one()
    assert results["events"]["opened"] == opened == len(sent)
    assert results["events"]["clicked"] == len(range(0, len(sent), 3))
    suppressed = dict(db.session.execute(text(
        "SELECT error, count(*) FROM touches WHERE playbook_id = :p AND step_id = 'intro' AND status = 'suppressed' "
        "GROUP BY error"), {"p": row.id}).all())
    assert results["reasons"]["suppressed"] == suppressed

    # Paging: 5 a page through the API, every sent touch once.
    seen, cursor = [], None
    while True:
        items, cursor = touch_search.search(touch_search.Filters(playbook="planned", status="sent"), cursor, 5)
        seen += [i["id"] for i in items]
        if not cursor:
            break
    assert sorted(seen) == sorted(t.id for t in sent)
    found, _ = touch_search.search(touch_search.Filters(q="acct01"), None, 50)
    assert found and {i["account"] for i in found} == {"Acct01"}
