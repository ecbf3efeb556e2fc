"""What ``abm demo`` puts in the database: demo data, logins, connectors, playbooks, history.

``prepare(accounts)`` (inside an app context, on a migrated database) does it all and
is safe to run again: data is seeded and history generated only when the database has
no accounts; users, connectors and playbooks are created when missing. The history is
what makes the pages worth opening on the first visit: engagement events over the last
60 days (stored through :func:`abm.services.events.store`, the drain's own path), a
daily score snapshot for the last 30 days (from those events, as each day saw them),
and a few spend entries for the KPI dashboard. Stage changes and opportunities come
from :mod:`abm.services.seed`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select

from abm.auth import hash_password, verify_password
from abm.db import db, utcnow
from abm.models import Account, Contact, Enrollment, ScoreSnapshot, Touch, User
from abm.models import Playbook as PlaybookRow
from abm.paths import ROOT
from abm.services import connectors, events, playbooks, scores, spend
from abm.services import seed as seed_service
from abm.services.users import create_user

#: (role, email, name, password): fixed demo credentials, printed by ``abm demo``.
#: The AE is one of the seed's account executives, so it owns some of the accounts.
DEMO_USERS = (
    ("admin", "admin@ourco.example", "Alex Admin", "demo-admin"),
    ("manager", "manager@ourco.example", "Morgan Manager", "demo-manager"),
    ("ae", "avery.brooks@ourco.example", "Avery Brooks", "demo-avery"),
)
#: Playbook files the demo applies: the examples, then the demo's own.
PLAYBOOK_DIRS = (ROOT / "playbooks" / "examples", ROOT / "abm" / "demo" / "playbooks")
HISTORY_DAYS = 60
SNAPSHOT_DAYS = 30

#: Events per account by stage (low, high), and how much they crowd into recent days.
_INTENSITY = {"target": (0, 3), "aware": (2, 8), "engaged": (5, 14), "mqa": (10, 24),
              "opportunity": (10, 28), "customer": (4, 12), "lost": (0, 3)}
_TYPES = [("email_open", 30), ("email_click", 12), ("web_visit", 26), ("content_download", 6),
          ("webinar", 3), ("ad_impression", 10), ("ad_click", 4), ("intent", 3), ("email_reply", 2)]
_LATE_FUNNEL_TYPES = [("form_fill", 5), ("meeting", 3)]
_PAGES = ["/", "/blog/api-fraud-2027", "/product/secure-gateway", "/docs/architecture", "/pricing",
          "/demo", "/customers/harbor-federal", "/webinars/zero-trust-apis"]

Say = Callable[[str], None]


@dataclass
class Summary:
    seeded: dict[str, int] = field(default_factory=dict)
    users: list[tuple[str, str, str, str]] = field(default_factory=list)  # role, email, password, note
    connectors: list[str] = field(default_factory=list)
    events: int = 0
    snapshots: int = 0
    costs: int = 0
    past_touches: int = 0
    playbooks: list[tuple[str, str, str]] = field(default_factory=list)  # key, status, note
    problems: list[str] = field(default_factory=list)


def is_empty() -> bool:
    return not db.session.execute(select(func.count()).select_from(Account)).scalar_one()


def prepare(accounts: int = 300, seed: int = 42, now: datetime | None = None,
            say: Say | None = None) -> Summary:
    """Fill the demo database (see the module docstring); returns what was done."""
    say = say or (lambda _msg: None)
    now = now or utcnow()
    out = Summary()
    fresh = is_empty()
    if fresh:
        say(f"seeding {accounts} demo accounts ...")
        out.seeded = seed_service.seed(accounts, seed=seed, now=now)
    out.users = ensure_users()
    out.connectors = connectors.ensure_demo_connectors()
    if fresh:
        say("generating 60 days of engagement history ...")
        out.events = generate_history(now, seed=seed)
    out.playbooks, out.problems = install_playbooks()
    if fresh:
        out.past_touches = past_campaign(now, seed=seed)
        out.costs = record_spend(now)
        out.snapshots = snapshot_history(now)
    return out


# -- logins ----------------------------------------------------------------------------


def ensure_users() -> list[tuple[str, str, str, str]]:
    """The three demo logins; a user that exists with a password of its own keeps it."""
    result = []
    for role, email, name, password in DEMO_USERS:
        user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        note = ""
        if user is None:
            create_user(email=email, role=role, password=password, name=name)
        elif not user.password_hash:
            user.password_hash = hash_password(password)
            db.session.commit()
        else:

            if not verify_password(user, password):
                note = "password changed since the demo set it"
        result.append((role, email, password, note))
    return result


# -- playbooks -------------------------------------------------------------------------


def playbook_files() -> list[Path]:
    return [p for d in PLAYBOOK_DIRS if d.is_dir() for p in sorted(d.glob("*.yaml"))]


def install_playbooks() -> tuple[list[tuple[str, str, str]], list[str]]:
    """Apply every example playbook that validates here and activate those with an
    audience in the demo data (and every triggered one: they wait for events).

    Returns ([(key, status, note)], [problems]). A playbook already stored keeps its
    versions and status: the demo never pauses or rewinds what someone changed.
    """
    done, problems = [], []
    for path in playbook_files():
        source = path.read_text(encoding="utf-8")
        name = str(path.relative_to(ROOT))
        result = playbooks.validate(source, filename=name)
        if result.errors or result.playbook is None:
            problems.append(f"{name}: skipped, it does not validate here: {result.errors[0]}")
            continue
        pb = result.playbook
        row = db.session.execute(select(PlaybookRow).where(PlaybookRow.key == pb.key)).scalar_one_or_none()
        if row is not None:
            done.append((pb.key, row.status, "already there"))
            continue
        playbooks.apply(source, filename=name)
        if pb.audience is not None:
            entering = playbooks.plan(source, filename=name, sample=0)["entering"]
            if not entering:
                done.append((pb.key, "draft", "no demo account matches its audience"))
                continue
        state = playbooks.activate(pb.key)
        note = (f"{state.get('enrolled', 0)} accounts enrolled, {state.get('held_out', 0)} held out"
                if pb.audience is not None else f"waits for its trigger ({pb.trigger.on})")
        done.append((pb.key, state["status"], note))
    return done, problems


# -- history ---------------------------------------------------------------------------


def _when(rng: random.Random, now: datetime, stage: str) -> datetime:
    """A time in the last 60 days, an hour ago at the latest (the demo playbook waits for
    opens in the last 30 minutes: those are the live ones); accounts further down the
    funnel engaged more lately."""
    bias = {"engaged": 1.6, "mqa": 2.2, "opportunity": 2.0}.get(stage, 1.0)
    return now - timedelta(days=HISTORY_DAYS * rng.random() ** bias, seconds=rng.randint(3600, 7200))


def generate_history(now: datetime, seed: int = 42, batch: int = 250) -> int:
    """Engagement events over the last 60 days for the seeded accounts; returns how many.

    Stored through :func:`abm.services.events.store` (matching, scores, alerts: what
    the drain does with real events), in batches.
    """
    rng = random.Random(seed)
    people: dict[int, list[tuple[int, str]]] = {}
    for cid, aid, email in db.session.execute(
            select(Contact.id, Contact.account_id, Contact.email).where(Contact.account_id.is_not(None))
            .order_by(Contact.id)):
        people.setdefault(aid, []).append((cid, email))
    lines: list[str] = []
    n = 0
    for aid, stage in db.session.execute(select(Account.id, Account.stage).order_by(Account.id)).all():
        low, high = _INTENSITY.get(stage, (0, 3))
        kinds = _TYPES + (_LATE_FUNNEL_TYPES if stage in ("mqa", "opportunity", "customer") else [])
        for _ in range(rng.randint(low, high)):
            etype = rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]
            event = {"type": etype, "occurred_at": _when(rng, now, stage).isoformat(), "source": "demo",
                     "dedup_key": f"demo-history-{n}", "account_id": aid}
            contacts = people.get(aid)
            if etype.startswith("email_") or etype in ("form_fill", "webinar", "meeting", "content_download"):
                if contacts:
                    cid, email = rng.choice(contacts)
                    event.update(contact_id=cid, email=email)
            if etype == "web_visit":
                event["url"] = f"https://www.example.com{rng.choice(_PAGES)}"
            if etype == "ad_impression":
                event["quantity"] = rng.randint(20, 400)
            if etype == "intent":
                event["properties"] = {"topic": rng.choice(["API security", "fraud prevention", "zero trust"])}
            lines.append(json.dumps(event))
            n += 1
            if len(lines) >= batch:
                events.store(lines, now=now)
                lines = []
    if lines:
        events.store(lines, now=now)
    return n


def snapshot_history(now: datetime, days: int = SNAPSHOT_DAYS) -> int:
    """A score snapshot per account for each of the last ``days`` days, as each day's end
    saw the events, and today's; returns the rows written."""
    ids = list(db.session.execute(select(Account.id).order_by(Account.id)).scalars())
    today = now.date()
    first = today - timedelta(days=days - 1)
    db.session.execute(delete(ScoreSnapshot).where(ScoreSnapshot.day >= first, ScoreSnapshot.day < today))
    written = 0
    for back in range(days - 1, 0, -1):
        day = today - timedelta(days=back)
        at = datetime.combine(day, time(23, 59, 59), tzinfo=now.tzinfo)
        rows = [{"account_id": aid, "day": day, "score": round(score, 4)}
                for aid, score in scores.scores_at(ids, at).items() if score > 0.005]
        if rows:
            db.session.execute(ScoreSnapshot.__table__.insert(), rows)
            written += len(rows)
    db.session.commit()
    scores.recompute(now)
    return written + scores.snapshot(today, now)


def record_spend(now: datetime) -> int:
    """A few spend entries (ads, email, an event, the demo playbooks) for cost per lead."""
    today = now.date()
    entries = [
        {"channel": "ads", "product": "secure-gateway", "amount": "4200",
         "from": str(today - timedelta(days=59)), "to": str(today - timedelta(days=30))},
        {"channel": "ads", "product": "secure-gateway", "amount": "5100",
         "from": str(today - timedelta(days=29)), "to": str(today)},
        {"channel": "email", "product": "secure-gateway", "amount": "600",
         "from": str(today - timedelta(days=59)), "to": str(today)},
        {"channel": "events", "product": "secure-gateway", "amount": "8000",
         "date": str(today - timedelta(days=21))},
    ]
    if db.session.execute(select(PlaybookRow.id).where(PlaybookRow.key == "demo-first-touch")).first():
        entries.append({"playbook": "demo-first-touch", "channel": "email", "amount": "1200",
                        "date": str(today)})
    if db.session.execute(select(PlaybookRow.id).where(PlaybookRow.key == PAST_CAMPAIGN)).first():
        entries.append({"playbook": PAST_CAMPAIGN, "channel": "email", "amount": "3500",
                        "date": str(today - timedelta(days=50))})
    for entry in entries:
        spend.record_cost(entry, source="demo")
    return len(entries)


PAST_CAMPAIGN = "webinar-follow-up"


def past_campaign(now: datetime, seed: int = 42, key: str = PAST_CAMPAIGN) -> int:
    """A webinar follow-up that ran 45 to 59 days ago: completed enrollments and their sent
    emails, so that leads, opportunities and pipeline of the history are attributed to a
    playbook on the KPI dashboard. Returns the touches written (0 without that playbook)."""
    row = db.session.execute(select(PlaybookRow).where(PlaybookRow.key == key)).scalar_one_or_none()
    if row is None or row.status != "active":
        return 0
    version_id = playbooks.current_version(row).id
    rng = random.Random(seed + 1)
    people: dict[int, list[int]] = {}
    for cid, aid in db.session.execute(select(Contact.id, Contact.account_id).where(
            Contact.account_id.is_not(None), Contact.buying_role.in_(("decision_maker", "champion")))
            .order_by(Contact.id)):
        people.setdefault(aid, []).append(cid)
    accounts = [aid for aid, stage in db.session.execute(select(Account.id, Account.stage).order_by(Account.id))
                if stage in ("aware", "engaged", "mqa", "opportunity", "customer") and aid in people
                and rng.random() < 0.5]
    touches = []
    for aid in accounts:
        entered = now - timedelta(days=rng.uniform(45, 59))
        enrollment = Enrollment(playbook_id=row.id, version_id=version_id, account_id=aid, cycle=1,
                                state="completed", step_index=7, entered_at=entered,
                                left_at=entered + timedelta(days=9), exit_reason="completed",
                                entry_source="trigger", updated_at=entered + timedelta(days=9))
        db.session.add(enrollment)
        db.session.flush()
        for cid in people[aid][:2]:
            sent = entered + timedelta(minutes=rng.randint(1, 30))
            touches.append({"enrollment_id": enrollment.id, "playbook_id": row.id, "account_id": aid,
                            "contact_id": cid, "contact_key": cid, "step_id": "thanks", "step_index": 0,
                            "kind": "email", "channel": "email", "connector": "outbox", "status": "sent",
                            "payload": {"subject": "Your recording: zero-trust APIs for regulated industries"},
                            "due_at": sent, "queued_at": sent, "claimed_at": sent, "sent_at": sent,
                            "attempts": 1, "created_at": entered, "updated_at": sent})
    if touches:
        db.session.execute(Touch.__table__.insert(), touches)
    db.session.commit()
    return len(touches)
