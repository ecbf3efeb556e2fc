"""The holdout: a stable, random control group.

An account is held out of a playbook when its bucket, a number in ``[0, 100)``
derived from SHA-256 of ``"{playbook_key}:{account_id}"``, is below the playbook's
holdout percentage. The same account always lands on the same side, for every version
of the playbook and across re-enrollments.
"""

from __future__ import annotations

import hashlib


def bucket(playbook_key: str, account_id: int | str) -> float:
    """The account's bucket for this playbook, in ``[0, 100)``: the first 8 bytes of
    ``sha256(f"{playbook_key}:{account_id}")`` as a big-endian integer, / 2**64 * 100."""
    digest = hashlib.sha256(f"{playbook_key}:{account_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def is_held_out(playbook_key: str, account_id: int | str, percent: float) -> bool:
    """Whether the account belongs to the control group (``percent`` as in ``10.0``)."""
    return percent > 0 and bucket(playbook_key, account_id) < percent
