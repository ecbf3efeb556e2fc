"""What an account executive reads: my accounts, the stage by engagement matrix,
buying committee coverage and the playbooks an account is in.

Every list is a handful of queries whatever its length (no query per account).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select

from abm.db import db, in_list, utcnow
from abm.models import Account, Alert, Contact, Enrollment, Event, Playbook, Touch
from abm.scoring import driven_by, level
from abm.services import in_market, scores
from abm.services import settings as settings_service

ENGAGED_WINDOW = timedelta(days=90)
LEVELS = ("cold", "warm", "hot")


def pre_opportunity_stages(stages: list[str]) -> list[str]:
    """The stages before ``opportunity`` in the workspace's order (all but lost if absent)."""
    if "opportunity" in stages:
        return stages[:stages.index("opportunity")]
    return [s for s in stages if s not in ("customer", "lost")]


#: Accounts per page of My accounts.
PAGE_SIZE = 50
#: The filters of My accounts, as a seller saves them for their default.
FILTERS = ("q", "stage", "level", "tier", "changed", "sort")


def clean_filters(raw: dict, stages: list[str]) -> dict:
    """The My accounts filters from a query string or a saved default, unknown values
    dropped (a filter that cannot match is no filter): ``q`` (name or domain contains),
    ``stage``, ``level`` (cold, warm, hot), ``tier`` (a number), ``changed`` ("week":
    engaged in the last seven days), ``sort`` (score, change)."""
    q = (raw.get("q") or "").strip()[:100]
    tier = (raw.get("tier") or "").strip()
    return {
        "q": q,
        "stage": raw.get("stage") if raw.get("stage") in stages else "",
        "level": raw.get("level") if raw.get("level") in LEVELS else "",
        "tier": tier if tier.isdigit() and len(tier) < 4 else "",
        "changed": "week" if raw.get("changed") == "week" else "",
        "sort": "change" if raw.get("sort") == "change" else "score",
    }


def _filtered(owner_id: int, filters: dict, now: datetime):
    q = select(Account.id, Account.name, Account.domain, Account.stage, Account.tier, Account.score_ref,
               Account.passive_ref, Account.fit_score).where(Account.owner_id == owner_id)
    if filters.get("q"):
        needle = filters["q"].lower()
        q = q.where(or_(func.lower(Account.name).contains(needle, autoescape=True),
                        Account.domain.contains(needle, autoescape=True)))
    if filters.get("stage"):
        q = q.where(Account.stage == filters["stage"])
    if filters.get("level"):
        q = q.where(Account.engagement == filters["level"])
    if filters.get("tier"):
        q = q.where(Account.tier == int(filters["tier"]))
    if filters.get("changed") == "week":
        q = q.where(exists().where(Event.account_id == Account.id, Event.occurred_at > now - timedelta(days=7)))
    return q


def my_accounts(owner_id: int, filters: dict | None = None, page: int = 1, now: datetime | None = None,
                page_size: int | None = None) -> dict:
    """One page of the owner's accounts, filtered (:func:`clean_filters`), with score,
    change this week, trend, last touch and new alerts; and the total and pages.

    Sorted by score, the page is read in that order from the database (``score_ref`` is
    the order of the scores now); sorted by change, the change of every filtered account
    is computed first (from the week's events only). Trends, last touches and alerts are
    read for the page's accounts only.
    """
    now = now or utcnow()
    page_size = page_size or PAGE_SIZE
    filters = filters or {"sort": "score"}
    base = _filtered(owner_id, filters, now)
    cfg = settings_service.current()
    factor = scores.score_at(1.0, now, cfg["half_life_days"])
    if filters.get("sort") == "change":
        rows = db.session.execute(base).all()
        total, page = _paged(len(rows), page, page_size)
        week_ago = scores.scores_week_ago(rows, now)
        rows = sorted(rows, key=lambda a: (-round(a.score_ref * factor - week_ago[a.id], 1), a.name))
        rows = rows[(page - 1) * page_size:page * page_size]
    else:
        total, page = _paged(db.session.execute(select(func.count()).select_from(base.subquery())).scalar_one(),
                             page, page_size)
        rows = db.session.execute(base.order_by(Account.score_ref.desc(), Account.id)
                                  .offset((page - 1) * page_size).limit(page_size)).all()
        week_ago = scores.scores_week_ago(rows, now)
    pages = max(1, -(-total // page_size))
    return {"rows": _rows(rows, week_ago, factor, cfg, now), "total": total, "page": page, "pages": pages}


def _paged(total: int, page: int, page_size: int) -> tuple[int, int]:
    """(total, the page asked for kept within the pages there are)."""
    return total, min(max(1, page), max(1, -(-total // page_size)))


def _rows(rows, week_ago: dict, factor: float, cfg: dict, now: datetime) -> list[dict]:
    ids = [a.id for a in rows]
    if not ids:
        return []
    last_touch = dict(db.session.execute(select(Touch.account_id, func.max(Touch.sent_at)).where(
        in_list(Touch.account_id, ids), Touch.status == "sent").group_by(Touch.account_id)).all())
    open_alerts = dict(db.session.execute(select(Alert.account_id, func.count(Alert.id)).where(
        in_list(Alert.account_id, ids), Alert.in_state("new", now)).group_by(Alert.account_id)).all())
    trends = scores.trend(ids, days=30, now=now)
    out = []
    for a in rows:
        score_now = a.score_ref * factor
        trend = trends[a.id]
        trend[-1] = round(score_now, 1)
        out.append({"id": a.id, "name": a.name, "domain": a.domain, "stage": a.stage, "tier": a.tier,
                    "fit": a.fit_score,
                    "score": round(score_now, 1), "engagement": _level(score_now, cfg),
                    "driven_by": driven_by(a.score_ref, a.passive_ref),
                    "passive_share": a.passive_ref / a.score_ref if a.score_ref > 1e-12 else 0.0,
                    "change_week": round(score_now - week_ago[a.id], 1), "trend": trend,
                    "last_touch_at": last_touch.get(a.id), "open_alerts": open_alerts.get(a.id, 0)})
    return out


def _level(score: float, cfg: dict) -> str:
    return level(score, cfg["thresholds"])


def matrix(owner_id: int | None = None) -> dict:
    """Accounts counted by stage and engagement, with the two cells sales acts on."""
    q = select(Account.stage, Account.engagement, func.count()).group_by(Account.stage, Account.engagement)
    if owner_id is not None:
        q = q.where(Account.owner_id == owner_id)
    return _stage_matrix(db.session.execute(q).all())


def matrices(owner_id: int | None = None) -> tuple[dict, dict]:
    """The stage by engagement matrix (:func:`matrix`) and the fit by engagement one
    (``in_market.fit_matrix_of``) from one pass over the accounts: an index-only scan of
    ``ix_accounts_owner_stage_level`` (the whole workspace's, or a range for one owner)."""
    band = in_market.fit_band()
    q = (select(Account.stage, band, Account.engagement, func.count())
         .group_by(Account.stage, band, Account.engagement))
    if owner_id is not None:
        q = q.where(Account.owner_id == owner_id)
    by_stage, by_band = Counter(), Counter()
    for stage, band_name, lvl, n in db.session.execute(q):
        by_stage[stage, lvl] += n
        by_band[band_name, lvl] += n
    return (_stage_matrix([(s, lv, n) for (s, lv), n in by_stage.items()]),
            in_market.fit_matrix_of([(b, lv, n) for (b, lv), n in by_band.items()]))


def _stage_matrix(rows) -> dict:
    """The matrix from (stage, level, count) rows, in the workspace's stage order."""
    cfg = settings_service.current()
    counts: dict[str, dict[str, int]] = {s: {"cold": 0, "warm": 0, "hot": 0} for s in cfg["stages"]}
    for stage, lvl, n in rows:
        counts.setdefault(stage, {"cold": 0, "warm": 0, "hot": 0})[lvl] = n
    early = pre_opportunity_stages(cfg["stages"])
    return {
        "stages": list(counts),
        "levels": ["cold", "warm", "hot"],
        "counts": counts,
        "hot_not_in_opportunity": {"stages": early, "level": "hot",
                                   "count": sum(counts[s]["hot"] for s in early if s in counts)},
        "opportunities_gone_cold": {"stages": ["opportunity"], "level": "cold",
                                    "count": counts.get("opportunity", {}).get("cold", 0)},
    }


def coverage(account_id: int, now: datetime | None = None) -> list[dict]:
    """Per buying role: contacts, how many were reached (sent a touch) and engaged (recent events)."""
    now = now or utcnow()
    roles = settings_service.current()["roles"]
    contacts = db.session.execute(select(Contact.id, Contact.buying_role).where(
        Contact.account_id == account_id, Contact.erased_at.is_(None))).all()
    reached = set(db.session.execute(select(Touch.contact_id).where(
        Touch.account_id == account_id, Touch.status == "sent", Touch.contact_id.is_not(None)).distinct()).scalars())
    engaged = set(db.session.execute(select(Event.contact_id).where(
        Event.account_id == account_id, Event.contact_id.is_not(None),
        Event.occurred_at >= now - ENGAGED_WINDOW).distinct()).scalars())
    out = []
    for role in roles:
        ids = [c.id for c in contacts if (c.buying_role or "other") == role]
        out.append({"role": role, "contacts": len(ids), "reached": sum(1 for i in ids if i in reached),
                    "engaged": sum(1 for i in ids if i in engaged)})
    return out


def playbooks_of(account_id: int) -> list[dict]:
    rows = db.session.execute(
        select(Enrollment, Playbook.key, Playbook.name, Playbook.status).join(Playbook, Playbook.id == Enrollment.playbook_id)
        .where(Enrollment.account_id == account_id).order_by(Enrollment.entered_at.desc())).all()
    return [{"playbook": key, "name": name, "playbook_status": status, "state": e.state,
             "step_index": e.step_index, "next_run_at": e.next_run_at, "entered_at": e.entered_at,
             "exit_reason": e.exit_reason} for e, key, name, status in rows]
