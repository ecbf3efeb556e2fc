"""ICP fit: rules an admin edits, and a model trained on won and lost opportunities that
recovers a known generating model from generated accounts."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, insert, select, text

from abm import fitmodel
from abm.db import db, utcnow
from abm.errors import ValidationError
from abm.models import Account, Opportunity
from abm.services import audience, fit
from abm.services import settings as settings_service
from playbooks.settings import parse_account_condition

INDUSTRY_EFFECT = {"software": 1.5, "banking": 0.5, "retail": -1.2, "health": 0.0}
TIER_EFFECT = {1: 0.8, 2: 0.0, 3: -0.8}


def generate(n: int, seed: int = 3) -> list[float]:
    """n accounts with a closed opportunity each, won with the generating model's
    probability; returns those true probabilities in account id order."""
    rng = random.Random(seed)
    accounts, probabilities = [], []
    for i in range(n):
        employees = int(math.exp(rng.gauss(6, 1.4)))
        industry, tier = rng.choice(list(INDUSTRY_EFFECT)), rng.choice([1, 2, 3])
        z = -0.6 + 0.7 * (math.log1p(employees) - 6) / 1.4 + INDUSTRY_EFFECT[industry] + TIER_EFFECT[tier]
        probabilities.append(1 / (1 + math.exp(-z)))
        accounts.append({"name": f"Gen {i}", "domain": f"gen{i}.example", "industry": industry, "tier": tier,
                         "employees": employees, "stage": "target", "country": rng.choice(["US", "DE"])})
    db.session.execute(insert(Account), accounts)
    ids = list(db.session.execute(select(Account.id).order_by(Account.id)).scalars())
    closed = utcnow() - timedelta(days=30)
    db.session.execute(insert(Opportunity), [
        {"account_id": aid, "name": "Deal", "stage": "closed", "closed_at": closed, "created_at": closed,
         "won": rng.random() < p, "currency": "USD"} for aid, p in zip(ids, probabilities, strict=False)])
    db.session.commit()
    return probabilities


def test_the_model_recovers_a_known_generating_model(app):
    probabilities = generate(3000)
    summary = fit.refresh(retrain=True)
    assert summary["model"] is not None
    weights = {c["feature"]: c["weight"] for c in fit.summary()["coefficients"]}
    assert weights["employees"] > 0.3
    assert weights["industry is software"] > weights["industry is banking"] > weights["industry is retail"]
    assert weights["tier is 1"] > weights["tier is 2"] > weights["tier is 3"]
    outcomes = np.array([bool(w) for w in db.session.execute(
        select(Opportunity.won).order_by(Opportunity.account_id)).scalars()], dtype=float)
    true_auc = fitmodel.auc(np.array(probabilities), outcomes)
    assert abs(fit.summary()["auc"] - true_auc) < 0.03, (fit.summary()["auc"], true_auc)
    calibration = fit.summary()["calibration"]
    assert sum(b["n"] for b in calibration) == 3000
    assert all(abs(b["predicted"] - b["observed"]) < 0.1 for b in calibration if b["n"] >= 100)
    # every account is scored by the model, and the account page can say why
    scored = db.session.execute(select(func.count()).select_from(Account).where(Account.fit_model.is_not(None))).scalar()
    assert scored == 3000
    best = db.session.execute(select(Account).order_by(Account.fit_score.desc()).limit(1)).scalar_one()
    why = fit.explain(best)
    assert why["source"] == "model" and why["score"] == round(100 * best.fit_model)
    assert {c["feature"] for c in why["model"]["contributions"]} & {"industry is software", "tier is 1", "employees"}


def test_rules_score_accounts_until_there_is_enough_history(app):
    db.session.add_all([
        Account(name="Big bank", domain="bigbank.example", tier=1, employees=5000, industry="banking"),
        Account(name="Small shop", domain="shop.example", tier=3, employees=12, industry="retail"),
        Account(name="Mid", domain="mid.example", tier=2, employees=250, annual_revenue=80_000_000),
    ])
    db.session.commit()
    settings_service.update({"fit": {"rules": [
        {"label": "Tier 1", "when": {"tier": 1}, "points": 40},
        {"label": "Large", "when": {"employees": {"gte": 200}}, "points": 30},
        {"label": "Banks", "when": {"industry": ["banking", "insurance"]}, "points": 50},
        {"label": "Retail is hard", "when": {"industry": "retail"}, "points": -20},
    ], "model": {"enabled": True, "min_outcomes": 40, "l2": 1.0}}})
    assert fit.refresh()["model"] is None  # no closed opportunities yet
    scores = dict(db.session.execute(text("SELECT domain, fit_score FROM accounts")).all())
    assert scores == {"bigbank.example": 100.0, "shop.example": 0.0, "mid.example": 30.0}
    bank = db.session.execute(select(Account).where(Account.domain == "bigbank.example")).scalar_one()
    why = fit.explain(bank)
    assert why["source"] == "rules" and why["rule_points"] == 120.0
    assert [r["rule"] for r in why["rules"]] == ["Tier 1", "Large", "Banks"]


def test_audiences_select_by_fit_like_an_independent_query(app):
    generate(300)
    fit.refresh(retrain=True)
    condition = parse_account_condition({"fit": {"at_least": 60}}, "audience", ["target"], ["user"])
    expected = db.session.execute(text("SELECT count(*) FROM accounts WHERE fit_score >= 60")).scalar()
    assert 0 < audience.count_matching(condition, utcnow()) == expected


def test_a_wrong_fit_rule_is_refused_with_its_place(app):
    with pytest.raises(ValidationError) as caught:
        settings_service.update({"fit": {"rules": [{"when": {"industri": "banking"}, "points": 10}],
                                         "model": {"enabled": False, "min_outcomes": 40, "l2": 1.0}}})
    assert caught.value.details[0]["path"] == "fit.rules[0].when.industri"
    assert "did you mean 'industry'" in caught.value.details[0]["message"]
