"""A/B variants through the engine: the dry run predicts each variant's touches, the
dispatcher assigns each contact its variant and an ``abm worker`` process sends it
through the outbox (the .eml files say which subject each contact got), a retry sends
the same one; and the per-variant results with their comparison, against a hand
computation of Newcombe's interval, on the page's API."""

from __future__ import annotations

import email
import math
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select, update

from abm.db import db
from abm.models import Account, Contact, Event, Touch
from abm.services import connectors, variant_results
from abm.services import playbooks as service
from playbooks.variants import Variant, assign
from tests.engine.conftest import make_account, sent_lines
from tests.engine.processes import Recipe, wait_for
from workers import dispatcher, enqueue

PLAYBOOK = """version: 1
key: ab-engine
name: A/B through the engine
audience:
  where: {tier: [1]}
send_window: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00"}
steps:
  - id: hello
    email:
      to: {roles: [decision_maker]}
      subject: "Question for {{ account.name }}"
      body: "<p>Hi {{ contact.first_name }}</p>"
      variants:
        - name: question
          weight: 60
        - name: statement
          weight: 40
          subject: "News for {{ account.name }}"
          body: "<p>Short and to the point, {{ contact.first_name }}</p>"
"""
VARIANTS = (Variant("question", 60), Variant("statement", 40))
SUBJECT = {"question": "Question for {}", "statement": "News for {}"}
N = 40


def _world(outbox: Path) -> dict[str, tuple[int, str]]:
    """N tier-1 accounts with one decision maker each; contact email -> (id, account name)."""
    db.session.add_all(Account(name=f"Acct {i:02d}", domain=f"acct{i:02d}.example", tier=1, stage="target")
                       for i in range(N))
    db.session.flush()
    for account in db.session.execute(select(Account)).scalars():
        db.session.add(Contact(account_id=account.id, email=f"dm@{account.domain}", first_name="Dee",
                               buying_role="decision_maker"))
    db.session.commit()
    connectors.create({"type": "outbox", "name": "outbox", "settings": {"directory": str(outbox)},
                       "default": ["email"]})
    rows = db.session.execute(select(Contact.email, Contact.id, Account.name).join(Account)).all()
    return {r.email: (r.id, r.name) for r in rows}


def _sent_subjects(outbox: Path) -> dict[str, str]:
    out = {}
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes())
        out[email.utils.parseaddr(message["To"])[1]] = str(email.header.make_header(
            email.header.decode_header(message["Subject"])))
    return out


def test_each_contact_gets_its_assigned_variant_from_a_worker_process_and_again_on_retry(app, backend, tmp_path):
    if backend != "postgresql":
        pytest.skip("the production recipe's processes run against PostgreSQL here")
    outbox = tmp_path / "outbox"
    contacts = _world(outbox)
    expected = {address: assign("ab-engine", "hello", cid, VARIANTS).name for address, (cid, _) in contacts.items()}
    assert set(Counter(expected.values())) == {"question", "statement"}  # both drawn on 40 contacts

    plan = service.plan(PLAYBOOK)
    planned = {v["name"]: v["touches"] for v in plan["steps"][0]["variants"]}
    assert planned == dict(Counter(expected.values()))
    assert [(r.get("variant"), r["rendered"]["subject"][:8]) for r in plan["rendered"]] == [
        ("question", "Question"), ("statement", "News for")]

    service.apply(PLAYBOOK)
    service.activate("ab-engine")
    with Recipe(app, workers=1):  # the scheduler dispatches, the worker sends
        wait_for(lambda: len(_sent_subjects(outbox)) == N, 60, "every email in the outbox", every=0.25)
        subjects = _sent_subjects(outbox)
        assert subjects == {address: SUBJECT[expected[address]].format(name)
                            for address, (_, name) in contacts.items()}
        db.session.rollback()
        recorded = dict(db.session.execute(select(Contact.email, Touch.variant).join(
            Contact, Contact.id == Touch.contact_id)).all())
        assert recorded == expected

        # A retry (the touch put back in the queue, as after a retryable failure) sends the same variant.
        address = next(a for a, v in expected.items() if v == "statement")
        touch = db.session.execute(select(Touch).where(Touch.contact_id == contacts[address][0])).scalar_one()
        for path in outbox.glob("*.eml"):
            path.unlink()
        db.session.execute(update(Touch).where(Touch.id == touch.id).values(status="queued", sent_at=None, claimed_at=None))
        db.session.commit()
        enqueue.touches([(touch.id, touch.connector)])
        wait_for(lambda: len(_sent_subjects(outbox)) == 1, 30, "the retried email", every=0.25)
    assert _sent_subjects(outbox) == {address: SUBJECT["statement"].format(contacts[address][1])}


def _newcombe_by_hand(s1: int, n1: int, s0: int, n0: int) -> tuple[float, float, float]:
    """Newcombe (1998) method 10, written out from the paper: Wilson score limits of each
    proportion, then d -/+ sqrt of the sums of the squared distances."""
    z = 1.959963984540054

    def wilson(s, n):
        p = s / n
        centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)

    (l1, u1), (l0, u0) = wilson(s1, n1), wilson(s0, n0)
    p1, p0 = s1 / n1, s0 / n0
    d = p1 - p0
    return d, d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)


def test_per_variant_results_and_the_comparison_equal_a_hand_computation(app, sent_log, clock, worker, api):
    for i in range(N):
        make_account(f"Acct {i:02d}")
    service.apply(PLAYBOOK.replace("  where: {tier: [1]}\n", "  where: {tier: [1]}\nholdout: 0%\n"))
    service.activate("ab-engine", now=clock())
    dispatcher.dispatch(now=clock())
    worker()
    touches = db.session.execute(select(Touch).order_by(Touch.id)).scalars().all()
    by_variant = {name: [t for t in touches if t.variant == name] for name in ("question", "statement")}
    assert all(t.status == "sent" for t in touches) and all(by_variant.values())
    # Clicks: 1 of the baseline's touches, all but 1 of the variant's; replies: 2 of the baseline's.
    clicked = by_variant["question"][:1] + by_variant["statement"][:-1]
    replied = by_variant["question"][:2]
    for kind, chosen in (("email_click", clicked), ("email_reply", replied)):
        for t in chosen:
            db.session.add_all(Event(type=kind, occurred_at=clock(), account_id=t.account_id, contact_id=t.contact_id,
                                     touch_id=t.id, playbook_id=t.playbook_id, properties={}) for _ in range(2))
    db.session.commit()

    answer = api("ae").get("/api/v1/playbooks/ab-engine/results").get_json()
    test = answer["steps"][0]["ab"]
    n0, n1 = len(by_variant["question"]), len(by_variant["statement"])
    assert [(v["name"], v["statuses"], v["events"]) for v in test["variants"]] == [
        ("question", {"sent": n0}, {"clicked": 1, "replied": 2}),
        ("statement", {"sent": n1}, {"clicked": n1 - 1})]  # two events per touch count once
    assert answer["steps"][0]["statuses"] == {"sent": N} and answer["steps"][0]["events"]["clicked"] == n1
    comparisons = {c["metric"]: c for c in test["comparisons"]}
    for metric, (s1, s0) in {"click rate": (n1 - 1, 1), "reply rate": (0, 2)}.items():
        got = comparisons[metric]
        d, low, high = _newcombe_by_hand(s1, n1, s0, n0)
        assert (got["variant"], got["baseline"], got["variant_base"], got["baseline_base"]) == (
            "statement", "question", n1, n0)
        assert got["difference"] == pytest.approx(d) and got["low"] == pytest.approx(low)
        assert got["high"] == pytest.approx(high)
    assert comparisons["click rate"]["low"] > 0 and "statement has the higher click rate" in \
        comparisons["click rate"]["verdict"]
    assert comparisons["reply rate"]["low"] < 0 < comparisons["reply rate"]["high"]
    assert "Newcombe" in test["method"]
    assert variant_results.results_of("ab-engine")["steps"][0]["ab"] == test


def test_a_test_send_sends_the_contact_s_variant_or_the_one_named(app, sent_log, clock, worker, runner):
    account = make_account("Alpha")
    service.apply(PLAYBOOK)
    contact_id = db.session.execute(select(Contact.id).where(Contact.account_id == account.id)).scalar_one()
    own = assign("ab-engine", "hello", contact_id, VARIANTS).name
    other = next(v.name for v in VARIANTS if v.name != own)
    for extra, name in (([], own), (["--variant", other], other)):
        queued = runner.invoke(args=["playbook", "test-send", "ab-engine", "hello", "--to", "me@ourco.example",
                                     "--account", "alpha.example", *extra])
        assert queued.exit_code == 0, queued.output
        assert f"[Test variant {name}] {SUBJECT[name].format('Alpha')}" in queued.output
    worker()
    assert [line["payload"]["subject"] for line in sent_lines(sent_log)] == [
        f"[Test variant {own}] {SUBJECT[own].format('Alpha')}", f"[Test variant {other}] {SUBJECT[other].format('Alpha')}"]
    unknown = runner.invoke(args=["playbook", "test-send", "ab-engine", "hello", "--to", "me@ourco.example",
                                  "--account", "alpha.example", "--variant", "nope"])
    assert unknown.exit_code == 1 and "no variant 'nope' (its variants: question, statement)" in unknown.output
