"""Periodic engagement jobs: the event drain, late matching, score decay and snapshots."""

from __future__ import annotations

from abm.db import db
from abm.services import alerts, events, fit, idempotency, identification, matching, rollups, scores


def drain_events() -> dict:
    return events.drain().as_dict()


def match_pending() -> int:
    return matching.match_pending()


def refresh_scores() -> None:
    scores.refresh(None)
    db.session.commit()


def recompute_scores() -> int:
    return scores.recompute()


def snapshot_scores() -> int:
    return scores.snapshot()


def surge_alerts() -> int:
    return len(alerts.surges())


def refresh_kpi_rollups() -> int:
    return rollups.refresh()


def refresh_fit() -> dict:
    return fit.refresh()


def purge_visit_addresses() -> int:
    n = identification.purge_raw_addresses()
    db.session.commit()
    return n


def purge_lookup_addresses() -> int:
    """The full addresses of company look-ups older than ``identification.lookup_ip_days``."""
    n = identification.purge_lookup_addresses()
    db.session.commit()
    return n


def purge_idempotency_keys() -> int:
    return idempotency.purge()
