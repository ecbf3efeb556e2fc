"""The look-up job: company by IP from the provider (IPinfo) for unmatched visits.

Runs every few minutes: asks the first enabled ``ipinfo`` connector about the kept
addresses of recent unmatched visits that no fresh answer covers (a bounded number a
run, paced at the connector's rate limit), caches the answers, then matches the visits
whose company domain is an account's.
"""

from __future__ import annotations

import logging
import time

from abm.db import db
from abm.services import connectors as connector_service
from abm.services import identification, scores
from connectors.base import ConnectorError

log = logging.getLogger(__name__)
PER_RUN = 200


def look_up_addresses(limit: int = PER_RUN) -> dict:
    name = next((c.name for c in connector_service.list_configs() if c.type == "ipinfo" and c.enabled), None)
    if name is None:
        return {"looked_up": 0, "why": "no enabled ipinfo connector"}
    addresses = identification.addresses_to_look_up(limit)
    connector = connector_service.instantiate(name)
    calls, seconds = connector_service.rate_limit(name)
    found: dict[str, dict] = {}
    try:
        for ip in addresses:
            found.update(connector.lookup([ip]))
            time.sleep(seconds / calls)
    except ConnectorError as exc:
        log.warning("ipinfo look-ups stopped after %d: %s", len(found), exc)
    identification.store_lookups(found)
    db.session.commit()
    changed = identification.match_pending()
    if changed:
        scores.rescore(changed)
    db.session.commit()
    return {"looked_up": len(found), "matched_accounts": len(changed)}
