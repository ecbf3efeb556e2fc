"""Stored playbook versions as compiled playbooks, cached per process by version id.

Both the life cycle (:mod:`abm.services.playbooks`) and the engine's enrollment
(:mod:`abm.services.enrollment`) read them; they live here so that neither of those
modules needs the other.
"""

from __future__ import annotations

import json
from functools import lru_cache

from sqlalchemy import select

from abm.db import db
from abm.errors import NotFound
from abm.models import Playbook as PlaybookRow
from abm.models import PlaybookVersion
from playbooks.model import Playbook


@lru_cache(maxsize=256)
def _from_json(version_id: int, compiled_json: str) -> Playbook:
    return Playbook.from_dict(json.loads(compiled_json))


def compiled(version: PlaybookVersion) -> Playbook:
    """The compiled playbook of a stored version (cached per process by version id)."""
    return _from_json(version.id, json.dumps(version.compiled, sort_keys=True))


def compiled_by_id(version_id: int) -> Playbook:
    version = db.session.get(PlaybookVersion, version_id)
    if version is None:
        raise NotFound("playbook version")
    return compiled(version)


def current_version(row: PlaybookRow) -> PlaybookVersion:
    return db.session.execute(select(PlaybookVersion).where(
        PlaybookVersion.playbook_id == row.id, PlaybookVersion.version == row.current_version)).scalar_one()
