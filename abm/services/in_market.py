"""What the account page says about an account being in market: its fit and why, the
intent topics it researches, and the visits identified from its network."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import case, func, select

from abm.db import db, utcnow
from abm.errors import ValidationError
from abm.models import Account, AccountNetwork, AsnAccount, AsnRange, Event, IpLookup
from abm.services import fit
from abm.services import settings as settings_service
from abm.services.accounts import FIT_BANDS

INTENT_DAYS = 28
VISIT_DAYS = 30
MAX_VISITS = 2000


def _intent_topics(account_id: int, now: datetime) -> list[dict]:
    """Each topic's strongest signal in the last four weeks, strongest first."""
    best: dict[str, dict] = {}
    rows = db.session.execute(select(Event.properties, Event.occurred_at).where(
        Event.account_id == account_id, Event.type == "intent",
        Event.occurred_at >= now - timedelta(days=INTENT_DAYS)).order_by(Event.occurred_at.desc()).limit(500))
    for props, at in rows:
        topic, score = (props or {}).get("topic"), (props or {}).get("score")
        if not topic or not isinstance(score, (int, float)):
            continue
        key = topic.lower()
        if key not in best or score > best[key]["score"]:
            best[key] = {"topic": topic, "score": score, "provider": props.get("provider"), "at": at}
    return sorted(best.values(), key=lambda t: -t["score"])


def _network_visits(account_id: int, now: datetime) -> dict:
    """Visits matched by address in the last 30 days: how many, and the rules' pages."""
    rows = db.session.execute(select(Event.url, Event.properties).where(
        Event.account_id == account_id, Event.type == "web_visit", Event.contact_id.is_(None),
        Event.occurred_at >= now - timedelta(days=VISIT_DAYS)).limit(MAX_VISITS)).all()
    matched = [(url, props) for url, props in rows if (props or {}).get("ip_match")]
    rules = settings_service.current()["url_rules"]
    pages: Counter = Counter()
    for url, _ in matched:
        path = urlsplit(url or "").path
        for rule in rules:
            if rule["pattern"] in (url or ""):
                pages[rule["pattern"].strip("/") or path] += 1
                break
    sources = Counter(props["ip_match"]["source"] for _, props in matched)
    return {"count": len(matched), "pages": pages.most_common(5), "sources": dict(sources)}


def summary(account: Account, now: datetime | None = None) -> dict:
    now = now or utcnow()
    visits = _network_visits(account.id, now)
    return {"fit": fit.explain(account, now), "intent": _intent_topics(account.id, now), "visits": visits,
            "visits_text": visits_text(visits)}


def visits_text(visits: dict) -> str | None:
    """"3 visits from the account's network, 2 pages on pricing" (None without any)."""
    if not visits["count"]:
        return None
    text = f"{visits['count']} visit{'s' if visits['count'] != 1 else ''} from the account's network"
    pages = ", ".join(f"{n} page{'s' if n != 1 else ''} on {name}" for name, n in visits["pages"])
    return f"{text}, {pages}" if pages else text


def fit_band():
    """The SQL expression of an account's fit band (``FIT_BANDS``; ``none`` when not scored)."""
    return case(*[(Account.fit_score >= floor, name) for name, floor in FIT_BANDS.items()], else_="none")


def fit_matrix_of(rows) -> dict:
    """Accounts by ICP fit band and engagement level, from (band, level, count) rows
    (``sales_view.matrices`` counts them with the stage matrix, in one pass)."""
    bands = [*FIT_BANDS, "none"]
    counts = {b: {"cold": 0, "warm": 0, "hot": 0} for b in bands}
    for name, level, n in rows:
        counts[name][level] += n
    return {"bands": bands, "levels": ["cold", "warm", "hot"], "counts": counts,
            "high_fit_not_engaged": counts["high"]["cold"], "engaged_low_fit": counts["low"]["hot"]}


#: The settings blocks the in-market admin page edits, as JSON.
EDITABLE = ("identification", "intent", "fit")


def overview() -> dict:
    """The admin page: what identification holds, the intent and fit settings, the model."""

    count = lambda model: db.session.execute(select(func.count()).select_from(model)).scalar_one()  # noqa: E731
    current = settings_service.current()
    return {"networks": count(AccountNetwork), "asn_ranges": count(AsnRange), "asn_accounts": count(AsnAccount),
            "lookups": count(IpLookup), "settings": {key: current[key] for key in EDITABLE},
            "model": fit.summary()}


def update_settings(texts: dict[str, str], actor_id: int | None) -> None:
    """Save the edited blocks (JSON texts); ValidationError names each bad path."""

    changes, problems = {}, []
    for key in EDITABLE:
        if key not in texts:
            continue
        try:
            changes[key] = json.loads(texts[key])
        except ValueError as exc:
            problems.append({"path": key, "message": f"not JSON: {exc}"})
    if problems:
        raise ValidationError(problems)
    if changes:
        settings_service.update(changes, actor_id=actor_id)
