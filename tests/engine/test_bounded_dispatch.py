"""The same limits hold in the dispatcher: an active playbook whose template goes over
a sandbox limit for some accounts fails those touches, with the limit and the template
line as the reason, and the other accounts get theirs; the dispatcher is never pinned.
(The timeout is a guard against a hang, not a speed measurement.)"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from abm.db import db
from abm.models import Account, Touch
from abm.services import playbooks as service
from tests.engine.conftest import make_account
from tests.engine.test_bounded_api import HOSTILE, LOOPS, SLOW
from workers import dispatcher


@pytest.mark.timeout(60)
@pytest.mark.parametrize("heavy, reason", [
    (LOOPS, "more than 10,000 iterations altogether (template line 1)"),
    (SLOW, "longer than 1 s to render (time limit) (template line 1)"),
])
def test_a_hostile_template_fails_its_touches_visibly(app, sent_log, clock, heavy, reason):
    make_account("Slow")
    make_account("Fine")
    service.apply(HOSTILE.replace("%(heavy)s", heavy))
    service.activate("hostile")
    dispatcher.dispatch(now=clock(), enqueue=False)
    rows = db.session.execute(select(Account.name, Touch.status, Touch.error).join(
        Account, Account.id == Touch.account_id).where(Touch.step_id == "invite")).all()
    by_name = {name: (status, error) for name, status, error in rows}
    assert by_name["Fine"] == ("queued", None)
    status, error = by_name["Slow"]
    assert status == "failed" and error.startswith("template error: ") and reason in error
