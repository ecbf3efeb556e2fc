"""Located errors and the result of loading a playbook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playbooks.model import Playbook


@dataclass(frozen=True)
class PlaybookError:
    """One problem, where it is: ``str()`` is ``FILE:LINE:COL PATH: MESSAGE``.

    ``line`` and ``column`` are 1-based. ``path`` is the dotted path of the value in
    the playbook (``steps[0].email.to.roles[0]``); ``playbook`` for the document as a
    whole, ``yaml`` for YAML syntax errors.
    """

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column} {self.path}: {self.message}"

    def to_dict(self) -> dict:
        """The API's form of an error detail."""
        return {"file": self.file, "line": self.line, "column": self.column, "path": self.path,
                "message": self.message}


@dataclass
class LoadResult:
    """``playbook`` is set exactly when ``errors`` is empty (all or nothing)."""

    playbook: Playbook | None
    errors: list[PlaybookError] = field(default_factory=list)
    #: The line of each step in the source (by step index), for messages about a step.
    step_lines: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.playbook is not None and not self.errors
