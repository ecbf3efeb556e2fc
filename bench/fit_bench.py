"""The ICP fit model at 100,000 accounts: training and scoring time, on PostgreSQL.

    python bench/fit_bench.py [--accounts 100000]

Generates ``--accounts`` accounts with firmographics and one closed opportunity each, won
with the probability of a known logistic model (database ``abm_fit_bench``, made once),
then times ``fit.refresh(retrain=True)`` (read the outcomes, learn the features, train,
five-fold cross-validation, score every account and write the scores) and reports the
cross-validated AUC beside the generating model's own. The reference in the same run is
the plainest read of the same rows (``SELECT`` of the firmographics of every account),
which any training must do.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


import pixel_bench  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402

from abm.db import db, utcnow  # noqa: E402
from abm.models import Account, Opportunity  # noqa: E402
from abm.services import fit  # noqa: E402

pixel_bench.PG_DB = os.environ.get("ABM_BENCH_PG_DB", "abm_fit_bench")
INDUSTRIES = {"software": 1.5, "banking": 0.5, "retail": -1.2, "health": 0.0, "energy": -0.4}


def seed(app, n: int) -> None:
    with app.app_context():
        if db.session.execute(select(func.count()).select_from(Account)).scalar() == n:
            return
        # another size was seeded before: start again (this database is the bench's own)
        db.session.execute(Opportunity.__table__.delete())
        db.session.execute(Account.__table__.delete())
        rng = random.Random(5)
        closed = utcnow() - timedelta(days=20)
        for start in range(0, n, 10_000):
            rows, wins = [], []
            for i in range(start, min(start + 10_000, n)):
                employees = int(math.exp(rng.gauss(6, 1.4)))
                industry, tier = rng.choice(list(INDUSTRIES)), rng.choice([1, 2, 3])
                z = -0.6 + 0.7 * (math.log1p(employees) - 6) / 1.4 + INDUSTRIES[industry] + {1: 0.8, 2: 0, 3: -0.8}[tier]
                wins.append(rng.random() < 1 / (1 + math.exp(-z)))
                rows.append({"name": f"Fit {i}", "domain": f"fit{i}.example", "industry": industry, "tier": tier,
                             "employees": employees, "country": rng.choice(["US", "DE", "FR", "GB"]),
                             "stage": "target", "tags": rng.sample(["aws", "gcp", "azure", "sap", "okta"], 2)})
            ids = db.session.execute(insert(Account).returning(Account.id), rows).scalars().all()
            db.session.execute(insert(Opportunity), [
                {"account_id": a, "name": "Deal", "stage": "closed", "closed_at": closed, "created_at": closed,
                 "won": w, "currency": "USD"} for a, w in zip(ids, wins, strict=False)])
            db.session.commit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    args = parser.parse_args()
    pixel_bench.ensure_database()
    app = pixel_bench.make_app()
    seed(app, args.accounts)

    with app.app_context():
        counts = {t: db.session.execute(select(func.count()).select_from(m)).scalar() for t, m in
                  (("accounts", Account), ("opportunities", Opportunity))}
        print(f"rows: {counts}; load average {os.getloadavg()[0]:.1f}", flush=True)
        t0 = time.perf_counter()
        rows = db.session.execute(text("SELECT id, employees, annual_revenue, industry, country, tier, tags "
                                       "FROM accounts")).all()
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = fit.refresh(retrain=True)
        refresh_s = time.perf_counter() - t0
        model = fit.summary()
    print(f"reference, reading the {len(rows):,} accounts' firmographics: {read_s:.2f} s")
    print(f"fit.refresh(retrain=True): {refresh_s:.2f} s in all, of which training with 5-fold cross-validation "
          f"{model['train_seconds']:.2f} s ({model['won']:,} won, {model['lost']:,} lost); "
          f"cross-validated AUC {summary['auc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
