"""The ICP fit model: a regularised logistic regression on firmographics, trained on the
workspace's own won and lost opportunities, with per-feature contributions an account
executive can read ("+0.8 industry is software").

Pure numpy, no database: :mod:`abm.services.fit` gathers the rows and stores the model.

Features (``FeatureSpace``): ``log(1 + employees)`` and ``log(1 + annual revenue)``,
standardised, each with a "missing" flag; one column per tier; one per frequent industry,
country and tag (tags stand for the technologies an account uses); a value seen fewer
than ``min_count`` times in training falls in no column. Training is Newton's method
(iteratively reweighted least squares) on the log-likelihood with an L2 penalty on the
weights (not the intercept): exact, and a few iterations at 100,000 accounts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

NUMERIC = ("employees", "annual_revenue")
CATEGORICAL = ("industry", "country")
MAX_CATEGORIES = 25


@dataclass
class FeatureSpace:
    """Which columns a record becomes; learnt from the training records."""

    means: dict[str, float] = field(default_factory=dict)
    stds: dict[str, float] = field(default_factory=dict)
    categories: dict[str, list] = field(default_factory=dict)

    @classmethod
    def learn(cls, records: Sequence[dict], min_count: int = 5) -> FeatureSpace:
        space = cls()
        for name in NUMERIC:
            values = np.array([math.log1p(float(r[name])) for r in records if _present(r.get(name))])
            space.means[name] = float(values.mean()) if len(values) else 0.0
            space.stds[name] = float(values.std()) or 1.0 if len(values) else 1.0
        for name in CATEGORICAL:
            counts = Counter(_text(r.get(name)) for r in records if _text(r.get(name)))
            space.categories[name] = [v for v, n in counts.most_common(MAX_CATEGORIES) if n >= min_count]
        tiers = Counter(r.get("tier") for r in records if isinstance(r.get("tier"), int))
        space.categories["tier"] = sorted(t for t, n in tiers.items() if n >= min_count)
        tags = Counter(_text(t) for r in records for t in (r.get("tags") or []) if _text(t))
        space.categories["tags"] = [v for v, n in tags.most_common(MAX_CATEGORIES) if n >= min_count]
        return space

    @property
    def names(self) -> list[str]:
        out = []
        for name in NUMERIC:
            out += [name, f"{name} missing"]
        for name in (*CATEGORICAL, "tier", "tags"):
            label = "uses" if name == "tags" else f"{name} is"
            out += [f"{label} {v}" for v in self.categories.get(name, [])]
        return out

    def matrix(self, records: Sequence[dict]) -> np.ndarray:
        columns = []
        for name in NUMERIC:
            raw = [r.get(name) for r in records]
            present = np.array([_present(v) for v in raw])
            logs = np.array([math.log1p(float(v)) if ok else self.means[name] for v, ok in zip(raw, present, strict=False)])
            columns += [(logs - self.means[name]) / self.stds[name], (~present).astype(float)]
        for name in CATEGORICAL:
            values = [_text(r.get(name)) for r in records]
            columns += [np.array([v == c for v in values], dtype=float) for c in self.categories[name]]
        tiers = [r.get("tier") for r in records]
        columns += [np.array([t == c for t in tiers], dtype=float) for c in self.categories["tier"]]
        tag_sets = [{_text(t) for t in (r.get("tags") or [])} for r in records]
        columns += [np.array([c in s for s in tag_sets], dtype=float) for c in self.categories["tags"]]
        if not columns:
            return np.zeros((len(records), 0))
        return np.column_stack(columns)

    def to_dict(self) -> dict:
        return {"means": self.means, "stds": self.stds, "categories": self.categories}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpace:
        return cls(dict(data["means"]), dict(data["stds"]), {k: list(v) for k, v in data["categories"].items()})


def _present(value) -> bool:
    try:
        return value is not None and float(value) >= 0 and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _text(value) -> str:
    return str(value).strip().lower() if value is not None else ""


def train(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 50) -> tuple[np.ndarray, float]:
    """Weights and intercept of the L2-regularised logistic regression (Newton's method)."""
    n, d = x.shape
    design = np.column_stack([np.ones(n), x])
    beta = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -35, 35)))
        gradient = design.T @ (y - p) - penalty * beta
        weights = p * (1 - p)
        hessian = (design * weights[:, None]).T @ design + np.diag(penalty) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta[1:], float(beta[0])


def predict(x: np.ndarray, weights: np.ndarray, intercept: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x @ weights + intercept, -35, 35)))


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half)."""
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if not positives or not negatives:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def cross_validate(x: np.ndarray, y: np.ndarray, folds: int = 5, l2: float = 1.0, seed: int = 0) -> dict:
    """Out-of-fold predictions: their AUC and a calibration table of ten bins
    (``[{from, to, predicted, observed, n}]``)."""
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(y)) % folds
    predicted = np.zeros(len(y))
    for k in range(folds):
        train_rows, test_rows = fold_of != k, fold_of == k
        weights, intercept = train(x[train_rows], y[train_rows], l2)
        predicted[test_rows] = predict(x[test_rows], weights, intercept)
    bins = []
    edges = np.linspace(0, 1, 11)
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        inside = (predicted >= lo) & ((predicted < hi) | (hi == 1.0))
        if inside.any():
            bins.append({"from": round(float(lo), 1), "to": round(float(hi), 1), "n": int(inside.sum()),
                         "predicted": float(predicted[inside].mean()), "observed": float(y[inside].mean())})
    return {"auc": auc(predicted, y), "calibration": bins, "folds": folds}


def contributions(row: np.ndarray, weights: np.ndarray, names: list[str], top: int = 5) -> list[dict]:
    """The features that moved this account's log-odds most, from the average account's:
    ``[{feature, effect}]`` (effect in log-odds, signed), largest first."""
    effects = row * weights
    order = np.argsort(-np.abs(effects))
    return [{"feature": names[i], "effect": round(float(effects[i]), 3)} for i in order[:top] if effects[i] != 0]
