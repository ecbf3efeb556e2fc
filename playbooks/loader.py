"""Loading a playbook: YAML text -> validated :class:`~playbooks.model.Playbook`."""

from __future__ import annotations

from playbooks.errors import LoadResult
from playbooks.workspace import Workspace


def load(source: str, filename: str = "playbook.yaml", workspace: Workspace | None = None) -> LoadResult:
    """Parse and validate ``source`` (the YAML text of one playbook).

    All or nothing: ``LoadResult.playbook`` is set only when there is no error, and
    ``LoadResult.errors`` holds every error found, sorted by line and column, each a
    :class:`~playbooks.errors.PlaybookError` located in ``filename``. Never raises for
    bad input. ``workspace`` defaults to ``Workspace.default()``.
    """
    raise NotImplementedError
