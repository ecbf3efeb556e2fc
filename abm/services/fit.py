"""ICP fit per account: rules an admin edits, and a model trained on the workspace's own
won and lost opportunities once there is enough history.

- **Rules** (settings ``fit.rules``): ``{label, when: <account condition>, points}``; an
  account's rule points are the sum over the rules it matches, computed by the database in
  one ``UPDATE`` (the conditions compile to SQL as audiences do).
- **Model** (:mod:`abm.fitmodel`): trained when at least ``fit.model.min_outcomes`` accounts
  have a closed opportunity (won: any won; lost: all closed lost), with ten or more of
  each; its cross-validated AUC and calibration are kept with it for the settings page.
- **Fit** (``accounts.fit_score``, 0 to 100): the model's probability of winning times
  100 when a model is in force, else the rule points (clipped to 0 to 100). Both parts
  stay on the account, and :func:`explain` says which rules matched and which features
  moved the model.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import Float, case, cast, func, literal, select, text, update

from abm import fitmodel
from abm.db import db, utcnow
from abm.models import Account, FitModel, Opportunity
from abm.services import audience
from abm.services import settings as settings_service
from playbooks.settings import parse_account_condition

BATCH = 10_000
RETRAIN_AFTER = timedelta(days=7)
_COLUMNS = (Account.id, Account.employees, Account.annual_revenue, Account.industry, Account.country,
            Account.tier, Account.tags)


def config() -> dict:
    return settings_service.current()["fit"]


def _rules(cfg: dict) -> list[tuple[str, object, float]]:
    settings = settings_service.current()
    return [(rule.get("label") or f"rule {i + 1}",
             parse_account_condition(rule["when"], f"fit.rules[{i}].when", settings["stages"], settings["roles"]),
             float(rule["points"]))
            for i, rule in enumerate(cfg["rules"])]


def _record(row) -> dict:
    _, employees, revenue, industry, country, tier, tags = row
    return {"employees": employees, "annual_revenue": float(revenue) if revenue is not None else None,
            "industry": industry, "country": country, "tier": tier, "tags": tags or []}


def _outcomes() -> tuple[list[dict], np.ndarray]:
    """Firmographics and outcome (1 won, 0 lost) of every account with a closed opportunity."""
    won = func.max(case((Opportunity.won.is_(True), 1), else_=0))
    closed = (select(Opportunity.account_id, won.label("won"))
              .where(Opportunity.closed_at.is_not(None), Opportunity.won.is_not(None))
              .group_by(Opportunity.account_id).subquery())
    rows = db.session.execute(select(*_COLUMNS, closed.c.won).join(closed, closed.c.account_id == Account.id)).all()
    return [_record(r[:-1]) for r in rows], np.array([r[-1] for r in rows], dtype=float)


def train(now: datetime | None = None) -> FitModel | None:
    """Train and store a model from the outcomes so far; None when there are too few."""
    cfg = config()["model"]
    records, y = _outcomes()
    if len(y) < cfg["min_outcomes"] or y.sum() < 10 or (len(y) - y.sum()) < 10:
        return None
    started = time.perf_counter()
    space = fitmodel.FeatureSpace.learn(records)
    x = space.matrix(records)
    weights, intercept = fitmodel.train(x, y, cfg["l2"])
    checked = fitmodel.cross_validate(x, y, l2=cfg["l2"])
    model = FitModel(trained_at=now or utcnow(), space=space.to_dict(), names=space.names,
                     weights=[float(w) for w in weights], intercept=intercept, auc=checked["auc"],
                     calibration=checked["calibration"], won=int(y.sum()), lost=int(len(y) - y.sum()),
                     train_seconds=time.perf_counter() - started)
    db.session.add(model)
    db.session.flush()
    return model


def current_model() -> FitModel | None:
    return db.session.execute(select(FitModel).order_by(FitModel.id.desc()).limit(1)).scalar_one_or_none()


def _score_rules(cfg: dict, now: datetime) -> None:
    points = literal(0.0)
    for _, condition, value in _rules(cfg):
        points = points + case((audience.account_filter(condition, now), value), else_=0.0)
    db.session.execute(update(Account).values(fit_rules=points).execution_options(synchronize_session=False))


def _score_model(model: FitModel) -> None:
    space = fitmodel.FeatureSpace.from_dict(model.space)
    weights = np.array(model.weights)
    last = 0
    while True:
        rows = db.session.execute(select(*_COLUMNS).where(Account.id > last).order_by(Account.id).limit(BATCH)).all()
        if not rows:
            return
        probabilities = fitmodel.predict(space.matrix([_record(r) for r in rows]), weights, model.intercept)
        _write_probabilities([r[0] for r in rows], probabilities)
        last = rows[-1][0]


def _write_probabilities(ids: list[int], probabilities: np.ndarray) -> None:
    values = [float(p) for p in probabilities]
    if db.dialect == "postgresql":
        db.session.execute(text("UPDATE accounts SET fit_model = v.p FROM unnest(CAST(:ids AS integer[]), "
                                "CAST(:ps AS double precision[])) AS v(id, p) WHERE accounts.id = v.id"),
                           {"ids": ids, "ps": values})
    else:
        db.session.execute(text("UPDATE accounts SET fit_model = :p WHERE id = :id"),
                           [{"id": i, "p": p} for i, p in zip(ids, values, strict=False)])


def refresh(now: datetime | None = None, retrain: bool | None = None) -> dict:
    """Rule points for every account, the model retrained when it is a week old (or
    ``retrain``), model probabilities, and the fit score; returns a summary."""
    now = now or utcnow()
    cfg = config()
    _score_rules(cfg, now)
    model = current_model() if cfg["model"]["enabled"] else None
    if cfg["model"]["enabled"] and (retrain or (retrain is None and (model is None or model.trained_at < now - RETRAIN_AFTER))):
        model = train(now) or model
    if model is not None:
        _score_model(model)
    else:
        db.session.execute(update(Account).values(fit_model=None).execution_options(synchronize_session=False))
    rules = func.min(func.max(Account.fit_rules, 0.0), 100.0) if db.dialect == "sqlite" else \
        func.least(func.greatest(Account.fit_rules, 0.0), 100.0)
    db.session.execute(update(Account).values(
        fit_score=case((Account.fit_model.is_not(None), func.round(cast(Account.fit_model * 100, Float))), else_=rules))
        .execution_options(synchronize_session=False))
    db.session.commit()
    return {"model": model.id if model is not None else None, "auc": model.auc if model is not None else None}


def explain(account: Account, now: datetime | None = None) -> dict:
    """Why this account's fit is what it is: the rules it matches with their points, and
    the features that moved the model most."""
    now = now or utcnow()
    cfg = config()
    rules = _rules(cfg)
    matched = []
    if rules:
        flags = db.session.execute(select(*[case((audience.account_filter(c, now), 1), else_=0) for _, c, _ in rules])
                                   .where(Account.id == account.id)).one()
        matched = [{"rule": label, "points": points} for (label, _, points), hit in zip(rules, flags, strict=False) if hit]
    out = {"score": account.fit_score, "rule_points": account.fit_rules, "rules": matched,
           "source": "model" if account.fit_model is not None else "rules", "model": None}
    model = current_model() if cfg["model"]["enabled"] else None
    if model is not None:
        space = fitmodel.FeatureSpace.from_dict(model.space)
        row = space.matrix([_record(db.session.execute(select(*_COLUMNS).where(Account.id == account.id)).one())])[0]
        out["model"] = {"probability": account.fit_model, "auc": model.auc, "trained_at": model.trained_at.isoformat(),
                        "contributions": fitmodel.contributions(row, np.array(model.weights), model.names)}
    return out


def summary() -> dict | None:
    """The model in force, for the settings page: AUC, calibration, size, coefficients."""
    model = current_model()
    if model is None:
        return None
    coefficients = sorted(zip(model.names, model.weights, strict=False), key=lambda nw: -abs(nw[1]))
    return {"trained_at": model.trained_at.isoformat(), "auc": model.auc, "calibration": model.calibration,
            "won": model.won, "lost": model.lost, "train_seconds": model.train_seconds,
            "coefficients": [{"feature": n, "weight": round(w, 3)} for n, w in coefficients]}
