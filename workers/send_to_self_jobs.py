"""A test of an email step sent to the person who asked for it (``abm playbook
test-send``, the playbook page): one rendered email, through the step's connector, that
is no touch (it counts against no cap, in no KPI, and records no engagement)."""

from __future__ import annotations

import uuid

from abm.services import connectors
from connectors.base import PermanentError, RetryableError
from connectors.base import Touch as ConnectorTouch


def send_test_email(connector_name: str, payload: dict, to: str, account: dict, contact: dict,
                    playbook: dict) -> dict:
    """Send ``payload`` (a rendered email) to ``to``; ``{"ok", "error", "provider_id"}``."""
    try:
        connector = connectors.instantiate(connector_name)
        # Addressed to the person asking, not under the chosen contact's name (the body
        # was rendered for that contact already).
        to_self = {**contact, "email": to, "name": None, "first_name": None, "last_name": None}
        touch = ConnectorTouch(id=0, kind="email", channel="email", account=account, contact=to_self,
                               payload=payload, key=f"test:{uuid.uuid4().hex}", playbook=playbook)
        [result] = connector.send([touch])
    except (RetryableError, PermanentError) as exc:
        return {"ok": False, "error": str(exc) or type(exc).__name__, "provider_id": None}
    except Exception as exc:  # noqa: BLE001 - the person asking reads why, nothing retries a test
        return {"ok": False, "error": getattr(exc, "message", None) or str(exc) or type(exc).__name__,
                "provider_id": None}
    return {"ok": result.ok, "error": result.error, "provider_id": result.provider_id}
