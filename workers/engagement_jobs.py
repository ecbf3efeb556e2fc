"""Periodic engagement jobs: the event drain, late matching, score decay and snapshots."""

from __future__ import annotations


def drain_events() -> dict:
    from abm.services import events

    return events.drain().as_dict()


def match_pending() -> int:
    from abm.services import matching

    return matching.match_pending()


def refresh_scores() -> None:
    from abm.db import db
    from abm.services import scores

    scores.refresh(None)
    db.session.commit()


def recompute_scores() -> int:
    from abm.services import scores

    return scores.recompute()


def snapshot_scores() -> int:
    from abm.services import scores

    return scores.snapshot()


def surge_alerts() -> int:
    from abm.services import alerts

    return len(alerts.surges())


def refresh_kpi_rollups() -> int:
    from abm.services import rollups

    return rollups.refresh()


def refresh_fit() -> dict:
    from abm.services import fit

    return fit.refresh()


def purge_visit_addresses() -> int:
    from abm.db import db
    from abm.services import identification

    n = identification.purge_raw_addresses()
    db.session.commit()
    return n


def purge_idempotency_keys() -> int:
    from abm.services import idempotency

    return idempotency.purge()
